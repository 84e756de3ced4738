"""The daemon: ``python -m aish.warm.server FOLDER``, started by `aish.warm.spawn`.

One per user and folder (an exclusive lock on ``warm.lock`` decides), single-threaded so that
forking a child is safe: it imports what a command would import (the embedded model goes to
a model host process of its own, see `modelhost`, so nothing here ever runs llama.cpp's
threads; `hostkeeper` starts it again when it dies), then accepts clients on
``warm.sock`` (0600 in a 0700 folder; a peer of another uid is refused), forks one child per
command and reports each child's exit status. It leaves when unused for
``warm.idle_minutes``, when a client's fingerprint says it runs other code or another config,
when its socket is taken from it, and on SIGTERM; commands that are running finish first.

It never keeps a client's environment: that is read here only to pass it to the child.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import socket
import sys
import time

from aish.warm import child, hostkeeper, modelhost, protocol, spawn

CHECK_SECONDS = 30.0  # how often an idle daemon checks that its socket is still its own
HANDSHAKE_SECONDS = 5.0
STARTER_SECONDS = 30.0  # a first command that runs longer shares the machine with the loading
LOCK_WAIT_SECONDS = 10.0  # how long a new daemon waits for the one it replaces to let go


def log(text: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"[{os.getpid()}]", text, flush=True)


class Daemon:
    def __init__(self, folder: str, fp: str, idle_seconds: float):
        self.folder = folder
        self.fp = fp
        self.idle_seconds = idle_seconds
        self.path = os.path.join(folder, protocol.SOCKET_NAME)
        self.children: dict[int, socket.socket] = {}
        self.listener: socket.socket | None = None
        self.inode = 0
        self.lock_fd = -1
        self.last_used = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.keeper: hostkeeper.Keeper | None = None  # keeps the model host, if models

    # -- start and leave -------------------------------------------------------------------
    def lock(self) -> bool:
        """Whether this is the one daemon of the folder."""
        path = os.path.join(self.folder, protocol.LOCK_NAME)
        self.lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = -1
            return False
        os.ftruncate(self.lock_fd, 0)
        os.write(self.lock_fd, f"{os.getpid()}\n".encode())
        return True

    def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a socket left by a daemon that died; the lock is ours
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no moment where others may connect
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.inode = os.lstat(self.path).st_ino
        sock.listen(64)
        sock.setblocking(False)
        self.listener = sock
        self.last_used = time.monotonic()  # idle from now: loading took its time
        self.selector.register(sock, selectors.EVENT_READ, "listen")
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        for name in ("SIGCHLD", "SIGTERM", "SIGHUP", "SIGINT"):
            signal.signal(getattr(signal, name), self._on_signal)
        log(f"listening on {self.path}")

    def _on_signal(self, signum, _frame) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True

    def stop_listening(self) -> None:
        """No new clients: the socket (if still ours) and the lock go at once, so a new daemon
        can start while the commands already running here finish."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        self.listener.close()
        self.listener = None
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def still_ours(self) -> bool:
        try:
            return os.lstat(self.path).st_ino == self.inode
        except OSError:
            return False

    # -- the loop --------------------------------------------------------------------------
    def serve(self) -> None:
        next_check = time.monotonic() + CHECK_SECONDS
        self.reap()  # a model host that died before the daemon listened
        while True:
            if self.stopping:
                self.stop_listening()
            if self.listener is None and not self.children:
                return
            now = time.monotonic()
            if self.listener is not None and not self.children:
                if now - self.last_used >= self.idle_seconds:
                    log("idle: leaving")
                    self.stop_listening()
                    continue
                if now >= next_check:
                    next_check = now + CHECK_SECONDS
                    if not self.still_ours():
                        log("the socket is no longer ours: leaving")
                        self.stop_listening()
                        continue
            timeout = max(0.0, min(next_check, self.last_used + self.idle_seconds) - now)
            events = self.selector.select(None if self.children else timeout)
            # Reaped first: a command accepted below then gets the new model host, not the
            # one that died while the daemon waited.
            self.reap()
            for key, _ in events:
                if key.data == "listen":
                    self.accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self.wake_r, 512)
                elif isinstance(key.data, modelhost.Host):
                    if self.keeper is not None:
                        self.keeper.ready(key.data)
                else:
                    self.client_left(key.data)

    def accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.last_used = time.monotonic()
        fds: list[int] = []
        try:
            conn.setblocking(True)
            conn.settimeout(HANDSHAKE_SECONDS)
            if protocol.peer_uid(conn) != os.getuid():
                log("refused a client of another uid")
                conn.close()
                return
            body, fds = protocol.recv_request(conn)
            request = protocol.decode_request(body)
            if request[0] != self.fp:
                log("a client with another fingerprint: leaving for a new daemon")
                self.stopping = True
                self.stop_listening()  # before the answer: the client starts the new one
                conn.sendall(b"S\n")
                raise ValueError("stale")
            conn.sendall(b"A\n")
            if conn.recv(1) != b"G":
                raise ValueError("the client gave up")
            conn.settimeout(None)
            pid = os.fork()
            if pid == 0:
                child.run(conn, fds, request, self._daemon_fds(conn))
        except (OSError, ValueError) as exc:
            if str(exc) != "stale":
                log(f"client dropped: {exc}")
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        for fd in fds:
            os.close(fd)
        log(f"child {pid} runs a command")
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _daemon_fds(self, conn: socket.socket | None) -> list[int]:
        """What a child must not keep: everything of the daemon but its own client."""
        fds = [self.wake_r, self.wake_w, self.selector.fileno()]
        host = self.keeper.host if self.keeper is not None else None
        if host is not None and host.ready_r >= 0:
            fds.append(host.ready_r)
        fds += [c.fileno() for c in self.children.values() if c is not conn]
        if self.listener is not None:
            fds.append(self.listener.fileno())
        if self.lock_fd >= 0:
            fds.append(self.lock_fd)
        return fds

    def client_left(self, pid: int) -> None:
        """The client hung up (it was killed) while its command runs: the command stops, as it
        would have died with the client's process."""
        conn = self.children.get(pid)
        if conn is None:
            return
        self.selector.unregister(conn)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)

    def reap(self) -> None:
        """Report each command that ended to its client; a model host that died is started
        again (unless the daemon is leaving)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            serving = self.listener is not None and not self.stopping
            if self.keeper is not None and self.keeper.reaped(pid, status, serving):
                continue
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            self.last_used = time.monotonic()
            if os.WIFSIGNALED(status):
                message = f"K{os.WTERMSIG(status)}\n"
            else:
                message = f"X{os.waitstatus_to_exitcode(status)}\n"
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(message.encode())
            conn.close()


# What a piped exchange imports beyond the command modules (found by listing sys.modules
# after one); a module missing here costs its import in every child, nothing worse.
EXCHANGE_MODULES = (
    "aish.branches", "aish.checkout", "aish.localstate", "aish.recent", "aish.search_index",
    "aish.sessions", "aish.titles", "aish.shell.hooks", "aish.providers.openai_provider",
    "sqlite3", "pwd", "h11", "jiter", "openai", "openai.pagination",
    "openai.resources.chat.completions.completions", "openai.resources.models",
    "openai.lib.streaming.chat", "httpcore2", "anyio.streams.tls", "truststore",
)


def preload(env) -> list[tuple[str, int, str]]:
    """Import what an exchange imports, so that children start with it all in memory; the
    embedded models the configuration would use ((path, n_ctx, a persona) each), for the model
    host to load: never this process, which forks."""
    from aish import cli  # noqa: F401
    from aish.commands import dispatch, exchange  # noqa: F401
    from aish.commands.context import Context

    dispatch.load_commands()
    import importlib

    for name in EXCHANGE_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from aish.warm import warmup

    warmup.run()

    ctx = Context(environ=dict(env))
    import aish.store.filestore  # noqa: F401 - not opened: that would create folders

    if ctx.config.storage_type == "redis":
        import aish.store.redisstore  # noqa: F401
    if env.get(spawn.OPENAI_VAR):
        return []
    from aish.conversation import build_chat
    from aish.providers import choose
    from aish.providers.local import LocalProvider

    models: dict[str, tuple[str, int, str]] = {}
    for specialist in ctx.specialists.values():
        if choose(specialist, ctx.config, None, env) == "local":
            settings = dict(ctx.config.providers.get("local") or {})
            provider = LocalProvider.from_settings(settings, specialist)
            persona = build_chat(specialist, [], False)[0].content
            models.setdefault(str(provider.model_path),
                              (str(provider.model_path), provider.n_ctx, persona))
    return list(models.values())


def host_models(daemon: Daemon, models: list[tuple[str, int, str]]) -> None:
    """Start the model host, and wait until it holds the models: every command gets a
    stand-in for each model that asks the host."""
    keeper = hostkeeper.Keeper(daemon.folder, models, daemon.selector,
                               lambda: daemon._daemon_fds(None), log)
    daemon.keeper = keeper
    if keeper.start() is None:
        log("model host did not start: commands load the model themselves")
        return
    keeper.wait()


def main(argv: list[str]) -> int:
    folder = argv[1]
    fp = os.environ.pop(spawn.FINGERPRINT_VAR, "")
    if not fp:
        return 2
    wait_for(os.environ.pop(spawn.STARTER_VAR, ""))
    from aish import config
    from aish.errors import AishError

    off = os.path.join(folder, protocol.OFF_NAME)
    try:
        settings = config.load()
    except AishError as exc:  # each command reports it in-process; none starts us again
        _write_off(off, fp)
        log(f"not starting: {exc}")
        return 1
    daemon = Daemon(folder, fp, settings.warm_idle_minutes * 60)
    # The daemon this one replaces (other code or config) lets the lock go as it leaves, which
    # on a busy machine can be after this one looks: it is given a little while to.
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not daemon.lock():
        if time.monotonic() > deadline:
            return 0  # another daemon serves the folder
        time.sleep(0.05)
    if not settings.warm_enabled:
        _write_off(off, fp)
        log("warm.enabled is false: not starting")
        return 0
    with contextlib.suppress(FileNotFoundError):
        os.unlink(off)
    models: list[tuple[str, int, str]] = []
    try:
        models = preload(os.environ)
    except Exception as exc:  # commands will load what they need themselves
        log(f"preload incomplete: {exc.__class__.__name__}: {exc}")
    if models:
        host_models(daemon, models)
    import gc

    gc.freeze()  # children then share the loaded objects' pages instead of copying them
    daemon.listen()
    daemon.serve()
    log("left")
    # Straight out: the interpreter's teardown would only run the loaded model's finalisers,
    # which fail noisily once their library's symbols are gone.
    os._exit(0)


def wait_for(pid: str, seconds: float = STARTER_SECONDS) -> None:
    """Wait until the command that started the daemon has ended (at most ``seconds``): loading
    while it runs would take a core from it."""
    try:
        fd = os.pidfd_open(int(pid))
    except (ValueError, OSError, AttributeError):  # gone already, or no pidfds here
        return
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            selector.select(seconds)
    finally:
        os.close(fd)


def _write_off(path: str, fp: str) -> None:
    temporary = f"{path}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(fp)
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
