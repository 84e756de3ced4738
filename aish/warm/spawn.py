"""Starting the daemon: detached by a double fork (its own session, no terminal, not a child of
the client), its output in a log file, and an environment holding no secrets.

The client that starts it does not wait: it runs its own command in-process, and the next
command finds the daemon warm. The daemon waits for that command to end before it loads
anything, so that on a machine with few cores the first command is no slower for it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from aish.warm import protocol

# What the daemon is started with: what the interpreter reads at start-up and what finds the
# config and the socket. API keys and everything else reach only the children, per command.
KEPT = ("PATH", "HOME", "TMPDIR", "AISH_CONFIG", "XDG_RUNTIME_DIR", "LANG", "LANGUAGE",
        "SSL_CERT_FILE", "SSL_CERT_DIR")
KEPT_PREFIXES = ("PYTHON", "LC_")
FINGERPRINT_VAR = "_AISH_WARM_FINGERPRINT"
STARTER_VAR = "_AISH_WARM_AFTER"  # the pid of the command that started the daemon
MAX_LOG_BYTES = 1 << 20
OPENAI_VAR = "_AISH_WARM_OPENAI"  # "1": the client named an OpenAI endpoint, so skip the model


def daemon_env(env, fp: str, starter: bool = False) -> dict[str, str]:
    kept = {k: v for k, v in env.items() if k in KEPT or k.startswith(KEPT_PREFIXES)}
    kept[FINGERPRINT_VAR] = fp
    if starter:
        kept[STARTER_VAR] = str(os.getpid())
    if env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY"):
        kept[OPENAI_VAR] = "1"
    return kept


def turned_off(folder: str, fp: str) -> bool:
    """The config turned the daemon off (``warm.enabled: false``), and is still the same."""
    try:
        with open(os.path.join(folder, protocol.OFF_NAME), encoding="utf-8") as handle:
            return handle.read() == fp
    except (OSError, UnicodeError):
        return False


def _locked(folder: str) -> bool:
    """A daemon holds the folder's lock: it is loading (or leaving), so starting another one
    would only make a process that finds the lock taken and exits."""
    import fcntl

    try:
        fd = os.open(os.path.join(folder, protocol.LOCK_NAME),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if it was taken here
    return False


def start(env, fp: str | None, starter: bool = False) -> None:
    """Start a daemon for this user; never fails the caller. ``starter``: this process is
    about to run a command, which the daemon lets end before it loads."""
    try:
        folder = protocol.runtime_dir(env, create=True)
        fp = fp or protocol.fingerprint(env)
        if turned_off(folder, fp) or _locked(folder):
            return
        new_env = daemon_env(env, fp, starter)
        log = os.path.join(folder, protocol.LOG_NAME)
        pid = os.fork()
    except (OSError, protocol.Refused):
        return
    if pid:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        return
    try:  # the first child: a new session, then the daemon in a grandchild, then leave
        os.setsid()
        if os.fork() == 0:
            _exec_daemon(folder, log, new_env)
    finally:
        os._exit(0)


def _exec_daemon(folder: str, log: str, env: dict[str, str]) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    with contextlib.suppress(OSError):
        if os.lstat(log).st_size > MAX_LOG_BYTES:  # a line per command adds up: start afresh
            flags |= os.O_TRUNC
    out = os.open(log, flags, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    # Nothing of the client's may stay open in the daemon: a pipe held here would keep the
    # client's reader waiting for an end of file.
    os.closerange(3, 1 << 16)
    os.chdir("/")
    os.execve(sys.executable, [sys.executable, "-m", "aish.warm.server", folder], env)
