"""API keys and the warm process: a key given to the client reaches the request, and nothing of
the daemon holds it afterwards: not its environment or command line, not its memory, not a file
it writes. The daemon reads only the command's header; the environment goes to the child by a
pipe the daemon never reads."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from conftest import run
from warm_support import wait_until


def memory_holds(pid: int, needles: list[bytes]) -> set[bytes]:
    """Which of ``needles`` occur in the writable memory of ``pid`` (its heap, its stacks,
    the interpreter's arenas): where a request the process read would have left them."""
    found: set[bytes] = set()
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) rw", line)
            if not match:
                continue
            start, end = int(match[1], 16), int(match[2], 16)
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            found |= {n for n in needles if n in data}
    return found


def every_file(*folders: Path) -> bytes:
    return b"".join(p.read_bytes() for folder in folders for p in folder.rglob("*")
                    if p.is_file())


def test_an_api_key_reaches_the_request_and_nothing_of_the_daemon(env, server, warm):
    warm_env = warm.env(env)
    daemon = warm.start(warm_env)
    key = f"sk-warm-{secrets.token_hex(12)}"
    session = f"control-{secrets.token_hex(6)}"  # read by the daemon: the scan must see it
    result = run({**warm_env, "OPENAI_API_KEY": key}, "apollo", "--session-id", session,
                 input="hi")
    assert (result.returncode, result.stdout) == (0, b"ok: hi\n"), result.stderr
    assert warm.served() == 1
    assert server.headers[-1]["authorization"] == f"Bearer {key}"
    wait_until(lambda: not warm.children(), "the command's child to end")

    assert key.encode() not in Path(f"/proc/{daemon}/environ").read_bytes()
    assert key.encode() not in Path(f"/proc/{daemon}/cmdline").read_bytes()
    assert key.encode() not in every_file(warm.folder, Path(env["HOME"]))
    assert memory_holds(daemon, [key.encode(), session.encode()]) == {session.encode()}


def test_the_daemon_is_started_without_the_starting_clients_key(home, server, warm):
    key = f"sk-first-{secrets.token_hex(12)}"
    warm_env = {**warm.env(home), "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": key}
    result = run(warm_env, "apollo", "--session-id", "first", input="hi")
    assert result.returncode == 0 and warm.served() == 0  # in-process; it starts the daemon
    wait_until(warm.listening, "the daemon the command started")
    daemon = warm.pid()
    assert daemon is not None
    assert key.encode() not in Path(f"/proc/{daemon}/environ").read_bytes()
    assert key.encode() not in memory_holds(daemon, [key.encode()])
    assert os.stat(warm.log).st_mode & 0o077 == 0
    assert key.encode() not in warm.log.read_bytes()
