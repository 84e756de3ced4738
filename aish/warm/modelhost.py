"""The model host: one process of the daemon's that holds the embedded model and answers every
command's requests for it, one at a time.

Why a process of its own: a command forked from a daemon that holds the model would read its
whole prompt again (the model's memory of the last prompt, its KV cache, dies with each
command), and a process with llama.cpp's compute threads is not one to fork from. The host is
forked from the daemon before anything of llama.cpp is loaded, loads the model itself, and
keeps its KV cache from one request to the next: llama-cpp-python reuses the longest prefix a
new prompt shares with the last one, so continuing a session reads only the new message.

It listens on a socket of its own beside the daemon's (0600 in the same 0700 folder, the
peer's uid checked), named by its pid so that a replacing daemon's host never takes it over.
Wire format, one JSON object per line: the command sends ``{"path", "n_ctx", "messages",
"options"}``; the host answers ``{"event": ...}`` lines as llama-cpp-python streams them (the
last one also carrying ``prompt_tokens``), or one ``{"error": text}`` (the model failed: the
command reports it as it would in-process), or one ``{"refused": text}`` (not a model held
here: the command loads its own). The host leaves when the daemon does (its pipe reaches end
of file), after the request it is serving. A host that dies (killed, out of memory) is started
again by the daemon, which gives up after a few quick deaths in a row (see `hostkeeper`).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import time
from pathlib import Path

from aish.warm import protocol

READY_SECONDS = 120.0  # loading a large model on a busy machine; past this the daemon goes on
MAX_REQUEST = 64 * 1024 * 1024
REQUEST_SECONDS = 10.0  # a command sends its request at once after connecting


def socket_path(folder: str, pid: int) -> str:
    return os.path.join(folder, f"model-{pid}.sock")


class Host:
    """What the daemon knows of its host: its pid and socket, the pipe it watches, and when it
    was started (a host that dies soon after is counted against restarting it)."""

    def __init__(self, pid: int, path: str, inode: int, alive_w: int, ready_r: int):
        self.pid = pid
        self.path = path
        self.inode = inode
        self.alive_w = alive_w  # closed only by the daemon's exit: the host then leaves
        self.ready_r = ready_r  # the host writes R once it holds its models; -1 once read
        self.started = time.monotonic()

    def read_ready(self) -> None:
        """Take what the host wrote on its ready pipe: R once it holds its models, or nothing
        at all when it died first (its end is then reaped, and counted, by the daemon)."""
        if self.ready_r < 0:
            return
        with contextlib.suppress(OSError):
            os.read(self.ready_r, 1)
        os.close(self.ready_r)
        self.ready_r = -1

    def forget(self) -> None:
        """The host is gone: close what the daemon held of it, and remove its socket, which a
        killed host leaves behind (a command must not wait on a name nobody serves)."""
        if self.ready_r >= 0:
            os.close(self.ready_r)
            self.ready_r = -1
        if self.alive_w >= 0:
            os.close(self.alive_w)
            self.alive_w = -1
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self.inode:
                os.unlink(self.path)


def start(folder: str, models: list[tuple[str, int, str]], close: list[int]) -> Host:
    """Fork the host for ``models`` ((path, n_ctx, persona to read first) each). Its socket is
    bound and listening before the fork, so a command may connect at once: it waits in the
    backlog while the host loads, and is answered (or, should the host die, loads the model
    itself) instead of loading its own copy beside the host's."""
    listener, inode, temporary = _listen(folder)
    ready_r, ready_w = os.pipe()
    alive_r, alive_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (ready_r, ready_w, alive_r, alive_w):
            os.close(fd)
        listener.close()
        os.unlink(temporary)
        raise
    if pid == 0:
        os.close(ready_r)
        os.close(alive_w)
        code = 1
        try:
            for fd in close:
                with contextlib.suppress(OSError):
                    os.close(fd)
            code = _host(folder, models, listener, inode, ready_w, alive_r)
        finally:
            os._exit(code)
    listener.close()
    os.close(ready_w)
    os.close(alive_r)
    os.set_inheritable(alive_w, False)
    path = socket_path(folder, pid)
    try:
        os.rename(temporary, path)  # the pid names it: a replacing daemon's host never takes it
    except OSError:
        os.kill(pid, signal.SIGKILL)  # a host nobody can reach; the daemon reaps it
        os.close(ready_r)
        os.close(alive_w)
        raise
    return Host(pid, path, inode, alive_w, ready_r)


def _listen(folder: str) -> tuple[socket.socket, int, str]:
    # Renamed to the host's own name once forked; never mistaken for a host's meanwhile.
    temporary = os.path.join(folder, f"model-starting-{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600
    try:
        listener.bind(temporary)
        listener.listen(64)
        return listener, os.lstat(temporary).st_ino, temporary
    except OSError:
        listener.close()
        raise
    finally:
        os.umask(old)


def _host(folder: str, models: list[tuple[str, int, str]], listener: socket.socket,
          inode: int, ready_w: int, alive_r: int) -> int:
    signal.set_wakeup_fd(-1)
    for name in ("SIGCHLD", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's session has no terminal
    path = socket_path(folder, os.getpid())
    try:
        held = _load(models)
        if not held:
            return 1
        os.write(ready_w, b"R")
        os.close(ready_w)
        _log(f"model host {os.getpid()} holds {', '.join(p for p, _ in held)}")
        _serve(listener, alive_r, held)
    finally:
        with contextlib.suppress(OSError):
            if os.lstat(path).st_ino == inode:
                os.unlink(path)
    return 0


def _load(models: list[tuple[str, int, str]]) -> dict:
    from aish.providers.local import load_here

    held = {}
    for path, n_ctx, persona in models:
        try:
            llm = load_here(Path(path), n_ctx)
        except Exception as exc:  # noqa: BLE001 - commands will report it themselves
            _log(f"model host: not holding {path}: {exc}")
            continue
        _prime(llm, persona)
        held[(path, n_ctx)] = llm
    return held


def _log(text: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"[{os.getpid()}]", text, flush=True)


def _prime(llm, persona: str) -> None:
    """Read a persona once, so that the first command with it reads only its own messages."""
    with contextlib.suppress(ValueError, RuntimeError):
        llm.create_chat_completion(messages=[{"role": "system", "content": persona},
                                             {"role": "user", "content": ""}],
                                   max_tokens=1, temperature=0.0)


def _serve(listener: socket.socket, alive_r: int, held: dict) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ, "listen")
        selector.register(alive_r, selectors.EVENT_READ, "alive")
        while True:
            for key, _ in selector.select():
                if key.data == "alive":  # the daemon is gone (only its exit closes the pipe)
                    return
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    with conn:
                        _answer(conn, held)


def _answer(conn: socket.socket, held: dict) -> None:
    if protocol.peer_uid(conn) != os.getuid():
        return
    conn.settimeout(REQUEST_SECONDS)  # a command stopped before it asked holds up no other
    with conn.makefile("rb") as reader:
        line = reader.readline(MAX_REQUEST)
    conn.settimeout(None)
    try:
        request = json.loads(line)
        key = (str(request["path"]), int(request["n_ctx"]))
        messages, options = list(request["messages"]), dict(request["options"])
    except (ValueError, KeyError, TypeError):
        return
    llm = held.get(key)
    if llm is None:
        _send(conn, {"refused": "not a model held here"})
        return
    try:
        events = llm.create_chat_completion(messages=messages, stream=True, **options)
    except (ValueError, RuntimeError, TypeError) as exc:
        _send(conn, {"error": str(exc)})
        return
    try:
        for event in events:
            if event["choices"][0].get("finish_reason"):
                from aish.providers.local import prompt_tokens

                event["prompt_tokens"] = prompt_tokens(llm, messages)
            _send(conn, {"event": event})
    except (ValueError, RuntimeError) as exc:  # e.g. a prompt longer than the context
        with contextlib.suppress(OSError):
            _send(conn, {"error": str(exc)})
    except OSError:
        _log("a command left mid-reply: stopped generating for it")
    else:  # no text of it: only that the host served it (not the command's own model)
        _log(f"model host {os.getpid()} answered a command")
    finally:  # the command left (Ctrl-C, killed): the model stops generating for it
        with contextlib.suppress(Exception):
            events.close()


def _send(conn: socket.socket, item: dict) -> None:
    conn.sendall(json.dumps(item).encode() + b"\n")
