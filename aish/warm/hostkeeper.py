"""Keeping the daemon's model host (see `modelhost`) alive: started with the daemon, started
again as soon as it dies (killed, out of memory, a crash), and given up after a few quick
deaths in a row, so that a host that cannot live here costs a few loads, not a restart loop.

Every command the daemon forks holds a stand-in for each hosted model (`hostedmodel`) naming
the current host's socket; a new host gets new stand-ins, and once the keeper gives up they
are taken away, so that commands load the model themselves as they would in-process.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable

from aish.warm import modelhost

QUICK_SECONDS = 60.0  # a host that dies sooner than this after it was started died "quickly"
MAX_QUICK_DEATHS = 3  # that many quick deaths in a row and the host is not started again


class Keeper:
    def __init__(self, folder: str, models: list[tuple[str, int, str]],
                 selector: selectors.BaseSelector, close: Callable[[], list[int]],
                 log: Callable[[str], None]):
        self.folder = folder
        self.models = models
        self.selector = selector
        self.close = close  # the daemon's descriptors, which a new host must not keep
        self.log = log
        self.host: modelhost.Host | None = None
        self.quick_deaths = 0

    def start(self) -> modelhost.Host | None:
        """Fork a host and give every later command stand-ins that ask it; None when it could
        not even be forked."""
        try:
            host = modelhost.start(self.folder, self.models, self.close())
        except OSError as exc:
            self.log(f"model host could not be started: {exc}")
            return None
        self.host = host
        self.selector.register(host.ready_r, selectors.EVENT_READ, host)
        self._stand_ins(host.path)
        return host

    def wait(self, seconds: float = modelhost.READY_SECONDS) -> None:
        """Wait until the host holds its models; one still loading after ``seconds`` goes on
        loading while the daemon serves (commands wait in its socket's backlog meanwhile)."""
        host = self.host
        if host is None:
            return
        with selectors.DefaultSelector() as selector:
            selector.register(host.ready_r, selectors.EVENT_READ)
            if selector.select(seconds):
                self.ready(host)

    def ready(self, host: modelhost.Host) -> None:
        """The host wrote on its ready pipe, or died before it could."""
        if host is not self.host or host.ready_r < 0:
            return  # an event of a host that has been replaced meanwhile
        self.selector.unregister(host.ready_r)
        host.read_ready()

    def reaped(self, pid: int, status: int, restart: bool) -> bool:
        """Whether ``pid`` was the host; if so it is forgotten and, when ``restart`` (the
        daemon still serves) and it has not died quickly too often, started again."""
        host = self.host
        if host is None or pid != host.pid:
            return False
        self.host = None
        if host.ready_r >= 0:
            self.selector.unregister(host.ready_r)
        host.forget()
        quick = time.monotonic() - host.started < QUICK_SECONDS
        self.quick_deaths = self.quick_deaths + 1 if quick else 0
        self.log(f"model host {pid} {_ended(status)}")
        if not restart:
            return True
        while self.quick_deaths < MAX_QUICK_DEATHS:
            new = self.start()
            if new is not None:
                self.log(f"model host {new.pid} started in its place")
                return True
            self.quick_deaths += 1
        self.give_up()
        return True

    def give_up(self) -> None:
        self.log(f"model host died {self.quick_deaths} times in a row soon after starting: "
                 "giving up on it; commands load the model themselves")
        from aish.providers import local

        for path, _n_ctx, _persona in self.models:
            local._MODELS.pop(path, None)

    def _stand_ins(self, socket_path: str) -> None:
        from aish.providers import local
        from aish.warm.hostedmodel import HostedModel

        for path, n_ctx, _persona in self.models:
            local._MODELS[path] = HostedModel(path, n_ctx, socket_path)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"ended (exit {os.waitstatus_to_exitcode(status)})"
