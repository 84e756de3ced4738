"""What a command run by the warm process holds in place of the embedded model: a stand-in with
the two calls `aish.providers.local` makes of a llama_cpp.Llama, answered by the daemon's model
host (see `modelhost`). A host that cannot be reached, or does not hold this model, costs only
the load it was meant to save: the command loads the model itself, as it would in-process.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

from aish.warm import protocol


class HostedModel:
    def __init__(self, path: str, n_ctx: int, socket_path: str):
        self.path = path
        self.n_ctx = n_ctx
        self.socket_path = socket_path
        self._own = None  # the model loaded here when the host could not answer

    def create_chat_completion(self, *, messages: list[dict], stream: bool = True,
                               **options) -> Iterator[dict]:
        if self._own is not None:
            return self._own.create_chat_completion(messages=messages, stream=stream, **options)
        conn = self._connect()
        if conn is not None:
            request = {"path": self.path, "n_ctx": self.n_ctx, "messages": messages,
                       "options": options}
            try:
                conn.sendall(json.dumps(request).encode() + b"\n")
                reader = conn.makefile("rb")
                first = json.loads(reader.readline() or b"{}")
            except (OSError, ValueError):
                first = {}
            if "event" in first or "error" in first:
                return _events(conn, reader, first)
            conn.close()
        return self._load_here().create_chat_completion(messages=messages, stream=stream,
                                                        **options)

    def tokenize(self, text: bytes, add_bos: bool = True) -> list[int]:
        return self._load_here().tokenize(text, add_bos=add_bos)

    def _connect(self) -> socket.socket | None:
        import os

        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.socket_path)
            if protocol.peer_uid(conn) == os.getuid():
                return conn
        except OSError:
            pass
        conn.close()
        return None

    def _load_here(self):
        if self._own is None:
            from aish.providers.local import load_here

            self._own = load_here(Path(self.path), self.n_ctx)
        return self._own


def _events(conn: socket.socket, reader, first: dict) -> Iterator[dict]:
    """The host's events as llama-cpp-python would yield them; closing this (the command
    stopped reading) hangs up, and the host stops generating."""
    try:
        item = first
        while True:
            if "error" in item:
                raise RuntimeError(item["error"])
            event = item.get("event")
            if event is None:
                raise RuntimeError("the warm process's model host ended mid-reply")
            yield event
            if event["choices"][0].get("finish_reason"):
                return
            try:
                line = reader.readline()
            except OSError:
                line = b""
            item = json.loads(line) if line else {}
    finally:
        reader.close()
        conn.close()
