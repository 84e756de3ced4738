"""Sessions on a Redis Cluster: the connection, and a rename made of single-slot steps.

A URL ``redis+cluster://HOST:PORT`` (``rediss+cluster://`` with TLS) names any node of a
cluster; redis-py's `redis.cluster.RedisCluster` finds the others and sends each command to
the master that serves its key. Every key of one session carries the hash tag ``{id}``, so a
session lives in one slot: its write script, its transactions and its pipelines stay
atomic. Store-wide keys (aliases, encryption settings, templates) are single keys, each in a
slot of its own; scans (`RedisCluster.scan_iter`) visit every master.

What cannot be one step on a cluster is a rename: the old id and the new one hash to
different slots, and a script or a transaction that touches both fails with CROSSSLOT. So a
rename is a chain of steps, each in one slot and each safe to run again, and a rename that
was interrupted is finished by running it again:

1. *freeze* (old slot): the old meta and log are renamed aside and a pointer
   ``aish:{old}:renaming`` names the new id. A writer that appends under the old id now
   finds no session, sees the pointer and waits for the rename (`forwarded`);
2. *publish* (new slot): the frozen meta and log are copied (DUMP, RESTORE) to the new id
   with the rename record appended, unless the new id is taken: then step 1 is undone;
3. the session's other keys (backups, the writers' own logs, the events stream) are copied and
   their old copies deleted, one key at a time;
4. the alias old -> new is recorded, and the frozen keys and the pointer are deleted.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from aish.errors import SessionExists, SessionNotFound, StorageError
from aish.store.base import dump_line

if TYPE_CHECKING:
    from aish.store.redisstore import RedisStore

# The cluster schemes and the plain scheme each stands for.
SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
WAIT_SECONDS = 30.0  # how long a writer waits for a rename under way before it gives up

# KEYS: old meta, old log, frozen meta, frozen log, pointer. ARGV: new id.
# Returns -1 (no session), 1 (frozen now), 2 (frozen already, by this same rename).
_FREEZE = """
local moving = redis.call('GET', KEYS[5])
if moving then
  if moving ~= ARGV[1] then return redis.error_reply('AISH_RENAMING ' .. moving) end
  return 2
end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
redis.call('SET', KEYS[5], ARGV[1])
return 1
"""

# Undo a freeze (the new id was taken). KEYS as _FREEZE.
_THAW = """
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[1]) end
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[2]) end
redis.call('DEL', KEYS[5])
return 1
"""

# Lua shared by both renames: append the rename record to the log and fold it into the meta
# hash as the write script counts records; "rl" moves on only if the branch heads covered the
# whole log.
STAMP = """
local function stamp(meta, log, record, id, from)
  local covered = tonumber(redis.call('HGET', meta, 'rl') or '-1')
  local length = redis.call('LLEN', log)
  -- the records of the other writers' logs count too (their places in the session)
  length = length + (tonumber(redis.call('HGET', meta, 'qn') or '0') or 0)
  redis.call('RPUSH', log, record)
  redis.call('HINCRBY', meta, 'bytes', #record + 1)
  redis.call('HSET', meta, 'm:id', id, 'm:renamed_from', from)
  if covered == length then redis.call('HSET', meta, 'rl', length + 1) end
end
"""

# KEYS: new meta, new log. ARGV: meta dump, log dump ("" for none), the deadline (a Unix time
# in ms, kept as it was so every key of the session still expires at one moment; 0: none), the
# meta record, its id value, its renamed_from value. Returns 0 (new id taken), 1 (published),
# 2 (published already, by this same rename).
_PUBLISH = STAMP + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'm:renamed_from') == ARGV[6] then return 2 end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local at = tonumber(ARGV[3])
redis.call('RESTORE', KEYS[1], at, ARGV[1], 'ABSTTL')
if ARGV[2] ~= '' then redis.call('RESTORE', KEYS[2], at, ARGV[2], 'ABSTTL') end
stamp(KEYS[1], KEYS[2], ARGV[4], ARGV[5], ARGV[6])
if at > 0 then redis.call('PEXPIREAT', KEYS[2], at) end
return 1
"""


def cluster_url(url: str) -> str | None:
    """The plain URL redis-py's cluster client takes, or None when ``url`` is no cluster's."""
    parts = urlsplit(url)
    plain = SCHEMES.get(parts.scheme.lower())
    return None if plain is None else urlunsplit(parts._replace(scheme=plain))


def open_client(url: str, **options):
    """A `redis.cluster.RedisCluster` for a cluster URL; it asks the node for the others."""
    from redis.cluster import RedisCluster

    return RedisCluster.from_url(url, **options)


def queue_script(script, pipe, keys: list, args: list, cluster: bool) -> None:
    """Queue a registered script in a transaction: by its text on a cluster, whose pipelines
    refuse EVALSHA (the script may not be loaded on the master of the slot)."""
    if cluster:
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    else:
        script(keys=keys, args=args, client=pipe)


def _deadline(client, key: str) -> int:
    """When ``key`` expires (Unix time in ms; 0: never), to copy it to the same moment."""
    at = client.pexpiretime(key)
    return at if at and at > 0 else 0


def _copy_key(client, source: str, target: str) -> None:
    """Copy ``source`` to ``target`` (another slot) with its deadline, then delete ``source``;
    a target that already holds the same value (an earlier, interrupted run) counts as
    copied, any other is left alone like the one-step rename leaves it."""
    payload = client.dump(source)
    if payload is None:
        return
    if not client.exists(target):
        client.restore(target, _deadline(client, source), payload, absttl=True)
    elif client.dump(target) != payload:
        return
    client.delete(source)


def rename(store: RedisStore, old: str, new: str, backups: list[str], logs: list[str]
           ) -> None:
    """Rename ``old`` to ``new`` in single-slot steps (see the module's docstring);
    ``backups`` and ``logs`` are the old backup keys and the writers' own logs."""
    client = store.client
    key = store._key
    frozen = [key(old, "meta"), key(old, "log"), key(old, "renaming:meta"),
              key(old, "renaming:log"), key(old, "renaming")]
    if client.get(frozen[4]) is None and (client.exists(key(new, "meta"))
                                          or client.exists(key(new, "log"))):
        raise SessionExists(f"session {new} already exists")
    try:
        done = client.eval(_FREEZE, 5, *frozen, new)
    except store.connection.errors.ResponseError as exc:
        if "AISH_RENAMING" not in str(exc):
            raise
        raise StorageError(f"session {old} is being renamed to {str(exc).split()[-1]}",
                           hint="run that rename again to finish it") from None
    if done == -1:
        raise SessionNotFound(f"session {old} not found")
    meta_dump = client.dump(frozen[2])
    if meta_dump is None:  # finished by another run of this rename meanwhile
        return
    log_dump = client.dump(frozen[3]) or b""
    record = dump_line({"t": "meta", "id": new, "renamed_from": old})[:-1]
    published = client.eval(_PUBLISH, 2, key(new, "meta"), key(new, "log"), meta_dump,
                            log_dump, _deadline(client, frozen[2]), record, json.dumps(new),
                            json.dumps(old))
    if published == 0:
        client.eval(_THAW, 5, *frozen)
        raise SessionExists(f"session {new} already exists")
    for source, start, into in ([(b, key(old, "backup:"), key(new, "backup:")) for b in backups]
                                + [(w, key(old, "log:"), key(new, "log:")) for w in logs]):
        _copy_key(client, source, into + source[len(start):])
    # Followers' events go along, so one resuming after the rename misses nothing.
    _copy_key(client, key(old, "events"), key(new, "events"))
    from aish.store.redisstore import ALIASES_KEY

    with client.pipeline(transaction=True) as pipe:  # one key: one slot
        pipe.hdel(ALIASES_KEY, new)
        pipe.hset(ALIASES_KEY, old, new)
        pipe.execute()
    client.delete(*frozen[2:])


def forwarded(store: RedisStore, sid: str) -> str | None:
    """Where a writer that found no session ``sid`` should write: the session it was renamed
    to, waiting for a rename under way to finish; None when it was not renamed."""
    pointer = store._key(sid, "renaming")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        target = store.alias(sid)
        if target is not None:
            return target
        moving = store.client.get(pointer)
        if moving is None:
            return store.alias(sid)  # finished between the two reads, or never renamed
        if time.monotonic() > deadline:
            name = moving.decode("utf-8", "replace")
            raise StorageError(f"session {sid} is being renamed to {name} and that has not "
                               "finished", hint=f"run aish --rename-session {sid} {name} "
                               "again to finish it")
        time.sleep(0.01)  # a rename is a handful of round trips
