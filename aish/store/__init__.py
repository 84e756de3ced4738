"""Session stores. `open_store` picks the backend the configuration asks for."""

from __future__ import annotations

from aish.config import Config


def open_store(config: Config, warn=None):
    """``warn``: where the file store reports problems of the store itself (loose modes, ...)."""
    codec = None
    if config.encrypt:
        from aish.store.crypto import codec_for

        codec = codec_for(config)
    if config.storage_type == "redis":
        from aish.store.redisstore import RedisStore

        return RedisStore(config.redis_url, codec=codec, timeout_minutes=config.timeout_minutes,
                          max_session_bytes=config.max_session_bytes,
                          stream_length=config.stream_length)
    from aish.store.filestore import FileStore

    return FileStore(config.session_dir, codec=codec, max_session_bytes=config.max_session_bytes,
                     warn=warn)
