"""The client half: decide whether a command goes to the warm process, hand it over, and end as
the command ended. Every doubt (no daemon, a stale or foreign one, a daemon that fails before
the command starts) returns None: the caller runs the command in its own process.

Imports only modules the interpreter has loaded already, plus socket; signal is loaded only
once a command runs in the daemon.
"""

from __future__ import annotations

import contextlib
import os
import socket

from aish.warm import protocol, spawn

HANDSHAKE_SECONDS = 5.0  # a daemon that does not accept within this is treated as absent
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
LOST = 1  # the daemon and its child both vanished while the command ran: its outcome is unknown
INTERRUPTED = 130  # as aish.errors.INTERRUPTED, which this module must not import


def eligible(argv: list[str]) -> bool:
    """Exchanges from a pipe go warm: `apollo ...`, `aish NAME ...`, `aish -c ...` with stdin
    not a terminal. The shell, session mode on a terminal and the management commands (fast
    in-process already) stay in-process."""
    words = argv[1:] if argv and argv[0] == "aish" else argv
    if not words:
        return False
    head = words[0]
    if head.startswith("-"):
        if head not in ("-c", "--continue"):
            return False
    elif head == "help":
        return False
    try:
        if os.isatty(0):
            return False
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:  # a closed standard stream: the in-process path knows how to run without
        return False
    return True


def warn(text: str) -> None:
    shown = "".join(c if c.isprintable() else "?" for c in text)
    with contextlib.suppress(OSError):
        os.write(2, f"aish: warning: {shown}\n".encode(errors="replace"))


def attempt(argv: list[str], argv0: str) -> int | None:
    """Run ``argv`` in the warm process and return its exit code, or None to run in-process.
    ``argv0`` is what the command's own sys.argv[0] would be (argparse names itself by it)."""
    env = os.environ
    if protocol.disabled(env) or not eligible(argv):
        return None
    uid = os.getuid()
    try:
        folder = protocol.runtime_dir(env, uid)
    except FileNotFoundError:
        spawn.start(env, None, starter=True)
        return None
    except protocol.Refused as exc:
        warn(f"not using the warm process: {exc}")
        return None
    except OSError:
        return None
    fp = protocol.fingerprint(env)
    if spawn.turned_off(folder, fp):
        return None
    path = os.path.join(folder, protocol.SOCKET_NAME)
    try:
        problem = protocol.private_problem(path, uid, want_socket=True)
    except FileNotFoundError:
        spawn.start(env, fp, starter=True)
        return None
    except OSError:
        return None
    if problem:
        warn(f"not using the warm process: {path}: {problem}")
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        return _exchange(sock, path, uid, fp, argv, argv0, env)
    except KeyboardInterrupt:  # Ctrl-C before the command started: it is not run at all
        return _interrupted()
    finally:
        sock.close()


def _interrupted() -> int:
    with contextlib.suppress(OSError):
        os.write(2, b"interrupted\n")  # what the in-process face says for a Ctrl-C this early
    return INTERRUPTED


def _exchange(sock: socket.socket, path: str, uid: int, fp: str, argv: list[str], argv0: str,
              env) -> int | None:
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        sock.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):  # a socket left by a daemon that died
        spawn.start(env, fp, starter=True)
        return None
    except OSError:
        return None
    try:
        if protocol.peer_uid(sock) != uid:
            warn(f"not using the warm process: {path} is served by another user")
            return None
    except OSError:
        return None
    env_r, env_w = os.pipe()
    try:
        try:
            reader = _handshake(sock, fp, argv, argv0, env, env_r)
        finally:
            os.close(env_r)  # the daemon holds its own: a write finds no reader once it is gone
        if reader is None:
            return None
        # Past G the command runs. Its environment goes by the pipe, which the daemon never
        # reads, so API keys reach only its child; a child that cannot read it ends unstarted.
        with contextlib.suppress(OSError):
            data = memoryview(protocol.encode_environment(env))
            while data:
                data = data[os.write(env_w, data):]
    finally:
        os.close(env_w)
    sock.settimeout(None)
    return _follow(reader)


def _handshake(sock: socket.socket, fp: str, argv: list[str], argv0: str, env,
               env_r: int) -> protocol.LineReader | None:
    """Hand over the command and get it accepted; None: nothing has run."""
    try:
        umask = os.umask(0o077)
        os.umask(umask)
        request = protocol.encode_request(fp, os.getcwd(), umask, [argv0, *argv])
        protocol.send_request(sock, request, [0, 1, 2, env_r])
        reader = protocol.LineReader(sock)
        answer = reader.next()
        if answer == b"S":  # the daemon runs other code or another config: it is leaving
            spawn.start(env, fp, starter=True)
            return None
        if answer != b"A":
            return None
        sock.sendall(b"G")
    except OSError:  # includes a timeout: nothing has run yet
        return None
    return reader


def _follow(reader: protocol.LineReader) -> int | None:
    """Wait for the command's outcome, passing on the signals a terminal or a supervisor sends
    to this process, so that Ctrl-C and `timeout` act on the command as they would in-process.
    """
    import signal

    child: list[int] = []
    pending: list[int] = []

    def forward(signum, _frame) -> None:
        if child:
            with contextlib.suppress(OSError):
                os.kill(child[0], signum)
        else:
            pending.append(signum)

    def suspend(_signum, _frame) -> None:
        """Ctrl-Z: the command stops with this process and goes on when it does."""
        if child:
            with contextlib.suppress(OSError):
                os.kill(child[0], signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until SIGCONT
        signal.signal(signal.SIGTSTP, suspend)
        if child:
            with contextlib.suppress(OSError):
                os.kill(child[0], signal.SIGCONT)

    before = {name: signal.signal(getattr(signal, name), forward) for name in FORWARDED}
    before["SIGTSTP"] = signal.signal(signal.SIGTSTP, suspend)
    try:
        return _outcome(reader, signal, child, pending, forward)
    finally:  # a fallback runs in-process with the handlers it would have had
        for name, handler in before.items():
            signal.signal(getattr(signal, name), handler)


def _outcome(reader: protocol.LineReader, signal, child: list[int], pending: list[int],
             forward) -> int | None:
    while True:
        try:
            line = reader.next()
        except OSError:
            line = None
        if not child and line is not None and line[:1] in (b"X", b"K"):
            line = None  # it ended before it started: nothing ran
        if line is None:
            if not child:  # the command never started: run it here, unless told to stop
                return _interrupted() if signal.SIGINT in pending else None
            warn("the warm process ended before the command did (exit 1)")
            return LOST
        kind, value = line[:1], line[1:]
        if kind == b"P" and not child:
            child.append(int(value))
            for signum in pending:
                forward(signum, None)
        elif kind == b"X":
            return int(value)
        elif kind == b"K":
            return _die_like(signal, int(value))


def _die_like(signal, signum: int) -> int:
    """The command was killed by a signal: end this process by the same one, so the caller sees
    what it would have seen of an in-process command (else 128 + the signal, as shells do)."""
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        os.kill(os.getpid(), signum)
    return 128 + signum
