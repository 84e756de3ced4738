"""One command run for a client, in a child forked from the daemon: it takes the client's
descriptors as its standard streams, the client's directory, umask, environment and argv, and
runs the normal CLI as a fresh process would, so storage, sanitising and exit codes are the
very same code. The environment (API keys included) lives only in this child: it reads it from
a pipe the request carried, which the daemon never reads.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import signal
import socket
import sys
import time
from typing import NoReturn

from aish.warm import protocol

SETUP_FAILED = 125  # reported before `P`: the client then runs the command itself


def run(conn: socket.socket, fds: list[int], request: tuple, close: list[int]) -> NoReturn:
    """Never returns: the child ends with the command's exit code."""
    _fp, cwd, umask, argv = request
    try:
        env = protocol.read_environment(fds[3])
        _reset_signals()
        for fd in close:
            os.close(fd)
        atexit._clear()  # the daemon's own exit handlers are not this command's
        os.chdir(cwd)
        os.umask(umask)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target, inheritable=True)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        sys.argv = list(argv)
        _standard_streams()
        conn.sendall(f"P{os.getpid()}\n".encode())
    except BaseException:  # nothing has run: the client will run the command itself
        os._exit(SETUP_FAILED)
    code = _main(argv[1:])
    with contextlib.suppress(OSError):
        conn.sendall(f"X{code}\n".encode())
    os._exit(code)


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for name in ("SIGCHLD", "SIGTERM", "SIGHUP", "SIGQUIT"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _standard_streams() -> None:
    """New sys.stdin/stdout/stderr over descriptors 0-2, made as the interpreter makes them at
    start-up (encoding and errors as this interpreter chose them, line-buffered on a terminal,
    stderr always line-buffered, write-through under -u / PYTHONUNBUFFERED)."""
    # -u and PYTHONUNBUFFERED show only in how the interpreter made its own streams.
    unbuffered = bool(getattr(sys.__stdout__, "write_through", False))
    made = []
    for fd, template in enumerate((sys.__stdin__, sys.__stdout__, sys.__stderr__)):
        reading = fd == 0
        raw = open(fd, "rb" if reading else "wb",  # noqa: SIM115 - lives as the stream
                   buffering=0 if unbuffered and not reading else -1, closefd=False)
        encoding = getattr(template, "encoding", None) or "utf-8"
        errors = getattr(template, "errors", None) or "strict"
        tty = os.isatty(fd)
        stream = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="\n",
                                  line_buffering=not unbuffered and (tty or fd == 2),
                                  write_through=unbuffered and not reading)
        made.append(stream)
    sys.stdin = sys.__stdin__ = made[0]  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = made[1]  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = made[2]  # type: ignore[misc]


def _main(argv: list[str]) -> int:
    """cli.main as the console script runs it, then what the interpreter does at exit."""
    from aish.cli import main

    try:
        code = _exit_code(main(argv))
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # a bug: shown as the interpreter would show it
        import traceback

        traceback.print_exc()
        code = 1
    import threading

    with contextlib.suppress(Exception):  # joins the threads a command left running
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = 120  # what the interpreter exits with when its final flush fails
    return code


def _exit_code(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(OSError, ValueError):
        print(value, file=sys.stderr)
    return 1
