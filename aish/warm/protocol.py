"""What the client and the daemon agree on: where the socket lives and how it is checked, the
fingerprint that says whether a daemon still fits, and the wire format.

The client side of this runs before anything else in every console script, so it imports only
what the interpreter has already loaded (os, sys, stat) plus socket.

Wire format, over a Unix stream socket:

- client → daemon: a 4-byte big-endian length, then ``AISH1`` and NUL-separated fields
  (fingerprint, cwd, umask, argc, argv...), with the client's descriptors 0, 1 and 2 and the
  read end of a pipe attached to the first bytes (SCM_RIGHTS);
- daemon → client: ``S`` (stale: the daemon does not fit, run in-process) or ``A`` (accepted);
- client → daemon after ``A``: ``G`` (go; from here on the client waits for the outcome);
  the client then writes a 4-byte length and the NUL-separated ``KEY=VALUE`` environment
  items into the pipe, which the daemon never reads: only the child it forks does;
- daemon's child → client: ``P<pid>`` when it starts the command, ``X<code>`` when it ends;
- daemon → client: ``X<code>`` or ``K<signal>`` once the child is reaped.

Every daemon message is one line. The ``G`` round trip is what makes a fallback safe: the
daemon forks only after it, and a client that gave up before sending it has sent nothing that
can run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys

MAGIC = b"AISH1"
MAX_REQUEST = 4 * 1024 * 1024  # argv plus environment; the kernel's own cap is lower
SOCKET_NAME = "warm.sock"
LOCK_NAME = "warm.lock"
LOG_NAME = "warm.log"
OFF_NAME = "warm.off"  # holds the fingerprint of a configuration that turned the daemon off
OFF_WORDS = ("0", "false", "no", "off")
# Variables the interpreter or the daemon's own start reads: a daemon started under other
# values would not behave as a fresh process would, so they are part of the fingerprint.
FINGERPRINT_ENV = ("HOME", "AISH_CONFIG", "LANG", "LANGUAGE")
FINGERPRINT_PREFIXES = ("PYTHON", "LC_")


class Refused(Exception):
    """A socket or folder that is not the user's own and private: never talk to it."""


def disabled(env) -> bool:
    return (env.get("AISH_WARM") or "").strip().lower() in OFF_WORDS


def private_problem(path: str, uid: int, want_socket: bool = False) -> str | None:
    """Why ``path`` may not be trusted (None: it is a private file or folder of ``uid``).
    Raises FileNotFoundError when it does not exist."""
    info = os.lstat(path)
    kind_ok = stat.S_ISSOCK(info.st_mode) if want_socket else stat.S_ISDIR(info.st_mode)
    if not kind_ok:
        return "not a socket" if want_socket else "not a directory"
    if info.st_uid != uid:
        return f"owned by uid {info.st_uid}"
    if info.st_mode & 0o077:
        return f"mode {stat.S_IMODE(info.st_mode):o} lets others in"
    return None


def runtime_dir(env, uid: int | None = None, create: bool = False) -> str:
    """The folder of this user's socket: $XDG_RUNTIME_DIR/aish (what platformdirs'
    user_runtime_dir names on Linux), /run/user/UID/aish, or /tmp/aish-UID. Raises Refused
    when the one that applies is not private, FileNotFoundError when it is missing and
    ``create`` is false."""
    uid = os.getuid() if uid is None else uid
    base = env.get("XDG_RUNTIME_DIR") or ""
    if not os.path.isabs(base):
        base = f"/run/user/{uid}"
        if not os.path.isdir(base):
            base = ""
    if base:
        problem = private_problem(base, uid) if os.path.lexists(base) else "missing"
        if problem:
            raise Refused(f"{base}: {problem}")
        path = os.path.join(base, "aish")
    else:
        path = os.path.join("/tmp", f"aish-{uid}")
    if create and not os.path.lexists(path):
        with contextlib.suppress(FileExistsError):  # another client's, a moment ago
            os.mkdir(path, 0o700)
    problem = private_problem(path, uid)
    if problem:
        raise Refused(f"{path}: {problem}")
    return path


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid as three ints)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(raw[4:8], sys.byteorder)


def _code_stamp(folder: str) -> str:
    """The newest modification time and the count of the package's Python files: a daemon
    running code that was since replaced (an upgrade, an edit) must not serve."""
    newest = count = 0
    todo = [folder]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
                    count += 1
                elif entry.is_dir() and not entry.name.startswith((".", "__")):
                    todo.append(entry.path)
    return f"{newest}:{count}"


def config_path(env) -> str:
    return env.get("AISH_CONFIG") or os.path.join(env.get("HOME") or os.path.expanduser("~"),
                                                   ".aish", "config.yaml")


def fingerprint(env) -> str:
    """What a daemon must share with this client to run its command as the client would:
    aish's version and code, the interpreter, the config file as it is now, and the
    variables read at start-up. No value here is a secret (no key variables are read)."""
    import aish

    package = os.path.dirname(os.path.abspath(aish.__file__))
    try:
        info = os.stat(config_path(env))
        conf = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    except OSError:
        conf = "none"
    names = sorted(k for k in env if k in FINGERPRINT_ENV or k.startswith(FINGERPRINT_PREFIXES))
    parts = [aish.__version__, package, _code_stamp(package), sys.executable,
             config_path(env), conf]
    parts += [f"{k}={env[k]}" for k in names]
    return "\x1f".join(parts)


# -- framing ---------------------------------------------------------------------------------

def encode_request(fp: str, cwd: str, umask: int, argv: list[str]) -> bytes:
    """The header: all the daemon reads of a command."""
    fields = [MAGIC, fp.encode(), os.fsencode(cwd), str(umask).encode(), str(len(argv)).encode()]
    fields += [os.fsencode(a) for a in argv]
    header = b"\0".join(fields)
    return len(header).to_bytes(4, "big") + header


def encode_environment(env) -> bytes:
    """The environment, written to the request's pipe once the daemon accepted the command."""
    environment = b"\0".join(os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items())
    return len(environment).to_bytes(4, "big") + environment


def decode_request(body: bytes) -> tuple[str, str, int, list[str]]:
    """(fingerprint, cwd, umask, argv) of a header; ValueError when malformed."""
    fields = body.split(b"\0")
    if len(fields) < 5 or fields[0] != MAGIC:
        raise ValueError("not an aish warm request")
    argc = int(fields[4])
    argv = [os.fsdecode(a) for a in fields[5:5 + argc]]
    if len(argv) != argc or len(fields) != 5 + argc:
        raise ValueError("malformed argv")
    return fields[1].decode(), os.fsdecode(fields[2]), int(fields[3]), argv


def send_request(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    sent = socket.send_fds(sock, [data[:65536]], fds)
    sock.sendall(data[sent:])


def recv_request(sock: socket.socket) -> tuple[bytes, list[int]]:
    """A request's header and the descriptors that came with it (the caller closes them).
    Reads not one byte past the header."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 4, 4)
    try:
        if len(fds) != 4:
            raise ValueError("the request carried no descriptors")
        size = int.from_bytes(_exactly(sock, 4 - len(data), data), "big")
        if size > MAX_REQUEST:
            raise ValueError("request too large")
        body = _exactly(sock, size)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return body, fds


def read_environment(fd: int) -> dict[str, str]:
    """The environment from the pipe a request carried (read by the child that runs the
    command, so that the daemon's memory never holds it, API keys and all)."""
    data = b""
    while True:
        more = os.read(fd, 1 << 16)
        if not more:
            break
        data += more
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    size = int.from_bytes(data[:4], "big")
    if len(data) != 4 + size:
        raise ValueError("short environment")
    env = {}
    for item in data[4:].split(b"\0") if size else []:
        key, sep, value = item.partition(b"=")
        if not sep or not key:
            raise ValueError("bad environment item")
        env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def _exactly(sock: socket.socket, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        more = sock.recv(min(1 << 20, size - len(data)))
        if not more:
            raise ValueError("short request")
        data += more
    return data


class LineReader:
    """Daemon messages, one line each, from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def next(self) -> bytes | None:
        """The next line without its newline; None at end of stream."""
        while b"\n" not in self.buffer:
            more = self.sock.recv(4096)
            if not more:
                return None
            self.buffer += more
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line
