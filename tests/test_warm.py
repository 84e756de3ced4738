"""The warm process: the same outcomes as in-process, refusals that fall back, kills, idle exit,
restarts on a changed config, and several clients at once. Each test has its own runtime folder
(the `warm` fixture) against the scripted server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BIN, REPO, run
from warm_support import alive, wait_until

from aish.errors import BROKEN_PIPE, INTERRUPTED, NOT_FOUND, PROVIDER, USAGE
from aish.store.filestore import FileStore
from aish.warm import client, protocol

# Every step is a piped exchange (or a command shaped like one), so each goes warm.
STEPS = [
    (("apollo", "--session-id", "talk"), "hello", None),
    (("apollo", "--session-id", "talk"), "and more", None),
    (("aish", "apollo", "--session-id", "talk", "from", "argv"), "", None),
    (("aish", "-c"), "continue please", None),
    (("apollo", "--session-id", "talk", "--code"), "no code here", None),
    (("apollo", "a", "one-off", "question"), "", None),
    (("apollo", "--session-id", "talk"), "this one fails", "500"),
    (("apollo", "--session-id", "talk", "--retry"), "", None),
    (("apollo", "--bogus"), "x", None),
    (("aish", "nobody"), "x", None),
    (("apollo", "--session", "sess_zzzzzz"), "x", None),
    (("apollo", "--session-id", "talk"), b"caf\xe9 bytes", None),
    (("apollo", "--session-id", "talk"), "too many", "429"),
    (("apollo", "--session-id", "talk", "--retry"), "", None),
]
CODES = [0, 0, 0, 0, 0, 0, PROVIDER, 0, USAGE, USAGE, NOT_FOUND, 0, PROVIDER, 0]
VARYING = {"time", "created", "updated", "id", "parent", "timing", "pp", "to", "from", "at",
           "source"}


def other_home(env: dict, root: Path) -> dict:
    """A second HOME like the fixture's, for running the same steps the other way."""
    home = root / "home"
    (home / ".aish").mkdir(parents=True)
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    (home / ".aish" / "config.yaml").write_bytes(config.read_bytes())
    os.chmod(home / ".aish" / "config.yaml", 0o600)
    return {**env, "HOME": str(home)}


def stored(sessions_dir: Path) -> list[str]:
    """Every stored session without what differs between two runs (times, random ids)."""
    found = []
    for log in sorted(sessions_dir.glob("*.jsonl")):
        records = [json.loads(line) for line in log.read_text().splitlines()]
        for r in records:  # a member's grant carries the time it was made
            for grant in (r.get("members") or {}).values():
                grant.pop("time", None)
        found.append(json.dumps([{k: v for k, v in r.items() if k not in VARYING}
                                 for r in records], sort_keys=True))
    return sorted(found)


def play(env: dict, server) -> list[tuple[int, bytes, bytes]]:
    outcomes = []
    for argv, text, mode in STEPS:
        server.script = [mode] if mode else []
        result = run(env, *argv, input=text)
        home = env["HOME"].encode()
        outcomes.append((result.returncode, result.stdout.replace(home, b"HOME"),
                         result.stderr.replace(home, b"HOME")))
    return outcomes


def test_warm_and_in_process_give_the_same_outputs_codes_and_sessions(env, server, warm,
                                                                       tmp_path):
    plain_env = other_home(env, tmp_path / "plain")
    in_process = play(plain_env, server)
    assert [code for code, _, _ in in_process] == CODES, in_process
    warm_env = warm.env(env)
    warm.start(warm_env)
    served = play(warm_env, server)
    # Every step ran in the daemon, none fell back (the daemon logs each child after the fork,
    # so the last line may come after its client is done: wait for it).
    deadline = time.monotonic() + 60
    while warm.served() < len(STEPS) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warm.served() == len(STEPS)
    assert served == in_process
    assert stored(Path(env["HOME"]) / ".aish" / "sessions") == \
        stored(Path(plain_env["HOME"]) / ".aish" / "sessions")
    assert b"ok: this one fails" in served[7][1]  # --retry answered the kept message
    assert b"ok: too many" in served[13][1]  # and the one a 429 left unanswered


def test_the_first_command_runs_in_process_and_starts_the_daemon(env, warm):
    warm_env = warm.env(env)
    result = run(warm_env, "apollo", "--session-id", "first", input="hi")
    assert result.returncode == 0 and result.stdout == b"ok: hi\n" and result.stderr == b""
    wait_until(warm.listening, "the daemon the first command started")
    assert warm.served() == 0
    assert oct(warm.folder.stat().st_mode & 0o777) == "0o700"
    assert oct(warm.sock.stat().st_mode & 0o777) == "0o600"
    assert run(warm_env, "apollo", "--session-id", "first", input="again").stdout == \
        b"ok: again\n"
    assert warm.served() == 1


# -- refusals ------------------------------------------------------------------------------------

def test_a_stale_socket_is_not_used_and_a_new_daemon_replaces_it(env, warm):
    warm.folder.mkdir(mode=0o700)
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(warm.sock))
    left.close()  # the file stays; nothing listens
    os.chmod(warm.sock, 0o600)
    result = run(warm.env(env), "apollo", "--session-id", "s", input="hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ok: hi\n", b"")
    wait_until(warm.listening, "a daemon in place of the stale socket")


def test_a_socket_others_may_use_is_refused(env, warm):
    warm.folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(warm.sock))
        listener.listen(8)
        listener.setblocking(False)
        os.chmod(warm.sock, 0o666)
        result = run(warm.env(env), "apollo", "--session-id", "s", input="hi")
        assert result.returncode == 0 and result.stdout == b"ok: hi\n"
        assert b"not using the warm process" in result.stderr and b"666" in result.stderr
        with pytest.raises(BlockingIOError):  # it never connected, so sent it nothing
            listener.accept()


def test_a_runtime_folder_others_may_enter_is_refused(env, warm):
    os.chmod(warm.runtime, 0o755)
    result = run(warm.env(env), "apollo", "--session-id", "s", input="hi")
    assert result.returncode == 0 and result.stdout == b"ok: hi\n"
    assert b"not using the warm process" in result.stderr
    assert not warm.folder.exists()


def test_a_daemon_of_another_uid_is_refused(env, warm, monkeypatch, capfd):
    warm_env = warm.env(env)
    warm.start(warm_env)
    monkeypatch.setattr(os, "environ", warm_env)
    path = str(warm.sock)
    with socket.socket(socket.AF_UNIX) as sock:  # SO_PEERCRED names our uid, not this one
        assert client._exchange(sock, path, os.getuid() + 1, "fp", ["apollo"], "apollo",
                                warm_env) is None
    assert "served by another user" in capfd.readouterr().err
    assert warm.served() == 0


def test_the_daemon_refuses_a_peer_of_another_uid(warm, monkeypatch):
    from aish.warm import server

    daemon = server.Daemon(str(warm.runtime), "fp", 60)
    a, b = socket.socketpair()
    monkeypatch.setattr(server.os, "getuid", lambda: 12345)
    monkeypatch.setattr(daemon, "listener", _OneConnection(a), raising=False)
    daemon.accept()
    assert b.recv(10) == b""  # closed without an answer
    assert daemon.children == {}
    b.close()


class _OneConnection:
    def __init__(self, conn):
        self.conn = conn

    def accept(self):
        return self.conn, None


def test_private_problem_names_owner_and_mode(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir(mode=0o700)
    assert protocol.private_problem(str(folder), os.getuid()) is None
    assert "owned by uid" in protocol.private_problem(str(folder), os.getuid() + 1)
    os.chmod(folder, 0o770)
    assert "lets others in" in protocol.private_problem(str(folder), os.getuid())
    assert protocol.private_problem(str(folder), os.getuid(), want_socket=True) == \
        "not a socket"


# -- turned off ----------------------------------------------------------------------------------

def test_aish_warm_0_never_starts_a_daemon(env, warm):
    result = run({**warm.env(env), "AISH_WARM": "0"}, "apollo", "--session-id", "s",
                 input="hi")
    assert result.returncode == 0 and result.stdout == b"ok: hi\n"
    assert not warm.folder.exists()


def test_warm_enabled_false_in_the_config_keeps_commands_in_process(env, warm):
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "warm: {enabled: false}\n")
    warm_env = warm.env(env)
    for text in ("one", "two", "three"):
        result = run(warm_env, "apollo", "--session-id", "s", input=text)
        assert result.returncode == 0 and result.stdout == f"ok: {text}\n".encode()
        wait_until(lambda: (warm.folder / "warm.off").exists(), "the daemon to turn itself off")
    assert warm.log.read_text().count("not starting") == 1  # only the first command tried
    assert not warm.sock.exists() and warm.served() == 0


def test_a_config_that_does_not_load_stops_daemons_from_starting(env, warm):
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "warm: {idle_minutes: soon}\n")
    warm_env = warm.env(env)
    for _ in range(2):
        result = run(warm_env, "apollo", "--session-id", "s", input="hi")
        assert result.returncode == 8 and b"warm.idle_minutes" in result.stderr
        wait_until(lambda: (warm.folder / "warm.off").exists(), "the daemon to give up")
    assert warm.log.read_text().count("not starting") == 1


# -- kills and signals ---------------------------------------------------------------------------

class Held:
    """Reply pieces: the first at once, the rest only when ``gate`` opens."""

    def __init__(self):
        self.gate = threading.Event()

    def __iter__(self):
        yield "first "
        self.gate.wait(60)
        yield "rest"


def started_exchange(env: dict, session: str, text: str) -> subprocess.Popen:
    # A process group of its own, whose parent (pytest) is in another group of the session:
    # a group without such a parent is orphaned, and the kernel then discards a SIGTSTP
    # instead of stopping the process, as it would for a job a shell started.
    proc = subprocess.Popen([str(BIN / "apollo"), "--session-id", session], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, process_group=0)
    proc.stdin.write(text.encode())
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() has nothing to send
    assert os.read(proc.stdout.fileno(), 100) == b"first "
    return proc


def messages(sessions_dir: Path, sid: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in FileStore(sessions_dir).load(sid).messages]


@pytest.fixture
def held(server):
    server.chunks = Held()
    yield server.chunks
    server.chunks.gate.set()


def test_killing_the_child_mid_reply_keeps_the_message_and_ends_the_client_alike(
        env, warm, held, sessions_dir):
    warm_env = warm.env(env)
    warm.start(warm_env)
    proc = started_exchange(warm_env, "k", "hold on")
    (child,) = warm.children()
    os.kill(child, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # as if aish itself had been killed (137 in a shell)
    assert messages(sessions_dir, "k") == [("user", "hold on")]


def test_killing_the_daemon_mid_reply_lets_the_command_finish(env, warm, held, sessions_dir):
    warm_env = warm.env(env)
    daemon = warm.start(warm_env)
    proc = started_exchange(warm_env, "d", "go on")
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), "the daemon to die")
    held.gate.set()
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (0, b"rest\n", b"")  # "first " was read above
    assert messages(sessions_dir, "d") == [("user", "go on"), ("assistant", "first rest")]
    result = run(warm_env, "apollo", "--session-id", "d", input="after")  # the stale socket
    assert result.returncode == 0 and result.stderr == b""
    wait_until(lambda: warm.listening() and warm.pid() not in (None, daemon), "a new daemon")


def interrupted(env: dict, sessions_dir: Path, held: Held, session: str):
    proc = started_exchange(env, session, "stop me")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    held.gate.set()
    return proc.returncode, out, err, messages(sessions_dir, session)


def test_ctrl_c_interrupts_the_command_as_in_process(env, warm, held, sessions_dir):
    warm_env = warm.env(env)
    warm.start(warm_env)
    got = interrupted(warm_env, sessions_dir, held, "warm-int")
    assert warm.served() == 1
    held.gate.clear()
    expected = interrupted(env, sessions_dir, held, "plain-int")
    assert got[0] == expected[0] == INTERRUPTED
    assert got[1:3] == (expected[1], expected[2].replace(b"plain-int", b"warm-int"))
    assert got[3] == expected[3] == [("user", "stop me"), ("assistant", "first ")]


def reader_leaves(env: dict, sessions_dir: Path, held: Held, session: str):
    proc = started_exchange(env, session, "long answer")
    proc.stdout.close()  # `| head -c 6`: the reader is gone before the rest arrives
    proc.stdout = None
    held.gate.set()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, messages(sessions_dir, session)


def test_a_reader_that_leaves_ends_the_command_as_in_process(env, warm, held, sessions_dir):
    warm_env = warm.env(env)
    warm.start(warm_env)
    got = reader_leaves(warm_env, sessions_dir, held, "warm-pipe")
    assert warm.served() == 1
    held.gate.clear()
    expected = reader_leaves(env, sessions_dir, held, "plain-pipe")
    assert got[:2] == expected[:2] and got[0] == BROKEN_PIPE
    assert got[2] == expected[2] == [("user", "long answer"), ("assistant", "first rest")]


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        raise AssertionError(f"process {pid} is gone") from None


def test_ctrl_z_stops_the_command_with_the_client(env, warm, held):
    warm_env = warm.env(env)
    warm.start(warm_env)
    proc = started_exchange(warm_env, "z", "pause")
    (child,) = warm.children()
    proc.send_signal(signal.SIGTSTP)
    wait_until(lambda: state(child) == "T" and state(proc.pid) == "T", "both to stop")
    proc.send_signal(signal.SIGCONT)
    wait_until(lambda: state(child) != "T", "the command to go on")
    held.gate.set()
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (0, b"rest\n", b"")


def test_a_killed_client_stops_its_command(env, warm, held, sessions_dir):
    warm_env = warm.env(env)
    warm.start(warm_env)
    proc = started_exchange(warm_env, "c", "hello")
    (child,) = warm.children()
    proc.kill()
    proc.wait()
    wait_until(lambda: not alive(child), "the command to stop with its client")
    assert messages(sessions_dir, "c") == [("user", "hello")]


# -- lifetime ------------------------------------------------------------------------------------

def test_an_idle_daemon_leaves(env, warm):
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "warm: {idle_minutes: 0.1}\n")
    warm_env = warm.env(env)
    daemon = warm.start(warm_env)
    assert run(warm_env, "apollo", "--session-id", "i", input="hi").returncode == 0
    wait_until(lambda: not alive(daemon), "the idle daemon to leave")
    assert not warm.sock.exists()
    assert "idle: leaving" in warm.log.read_text()


def test_a_changed_config_restarts_the_daemon(env, warm):
    warm_env = warm.env(env)
    old = warm.start(warm_env)
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "# changed\n")
    result = run(warm_env, "apollo", "--session-id", "r", input="after the change")
    assert (result.returncode, result.stdout, result.stderr) == \
        (0, b"ok: after the change\n", b"")
    assert warm.served() == 0  # the old daemon would not serve it
    wait_until(lambda: not alive(old), "the old daemon to leave")
    wait_until(lambda: warm.listening() and warm.pid() not in (None, old), "the new daemon")
    assert run(warm_env, "apollo", "--session-id", "r", input="next").stdout == b"ok: next\n"
    assert warm.served() == 1


def test_the_fingerprint_follows_version_code_and_config(home, monkeypatch, tmp_path):
    import aish

    before = protocol.fingerprint(home)
    monkeypatch.setattr(aish, "__version__", "99.0")
    assert protocol.fingerprint(home) != before
    monkeypatch.undo()
    assert protocol.fingerprint(home) == before
    assert protocol.fingerprint({**home, "AISH_CONFIG": str(tmp_path / "other.yaml")}) != before
    assert "test-key" not in protocol.fingerprint({**home, "OPENAI_API_KEY": "test-key"})


def test_the_code_stamp_follows_an_edited_module(tmp_path):
    (tmp_path / "sub").mkdir()
    module = tmp_path / "sub" / "m.py"
    module.write_text("x = 1\n")
    before = protocol._code_stamp(str(tmp_path))
    os.utime(module, ns=(1, module.stat().st_mtime_ns + 1_000_000))
    assert protocol._code_stamp(str(tmp_path)) != before


def test_several_clients_at_once_keep_every_message(env, warm, sessions_dir):
    warm_env = warm.env(env)
    warm.start(warm_env)
    assert run(warm_env, "apollo", "--session-id", "crowd", input="start").returncode == 0
    procs = [subprocess.Popen([str(BIN / "apollo"), "--session-id", "crowd", f"message {i}"],
                              env=warm_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(6)]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    for i, ((out, _err), code) in enumerate(results):
        assert code == 0 and out == f"ok: message {i}\n".encode()
    assert warm.served() == 7
    kept = messages(sessions_dir, "crowd")
    for i in range(6):
        assert ("user", f"message {i}") in kept and ("assistant", f"ok: message {i}") in kept


# -- secrets and start-up cost -------------------------------------------------------------------

def test_the_daemon_keeps_no_api_key(env, warm):
    warm_env = warm.env(env)
    assert run(warm_env, "apollo", "--session-id", "k", input="hi").returncode == 0
    wait_until(warm.listening, "the daemon")
    assert run(warm_env, "apollo", "--session-id", "k", input="again").returncode == 0
    assert warm.served() == 1
    daemon = warm.pid()
    assert b"test-key" not in Path(f"/proc/{daemon}/environ").read_bytes()
    assert b"test-key" not in Path(f"/proc/{daemon}/cmdline").read_bytes()
    assert "test-key" not in warm.log.read_text()


def test_the_console_script_decides_with_almost_no_imports():
    probe = ("import sys; before = set(sys.modules); import aish.cli, aish.warm.client; "
             "print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    loaded = set(result.stdout.decode().split())
    assert loaded <= {"aish", "aish.cli", "aish.errors", "aish.warm", "aish.warm.client",
                      "aish.warm.protocol", "aish.warm.spawn", "socket", "_socket", "array",
                      "selectors", "select", "math", "errno", "collections.abc"}, loaded


@pytest.mark.model
def test_the_embedded_model_answers_from_the_warm_process(home, warm, sessions_dir):
    warm_env = warm.env(home)
    warm.start(warm_env)
    result = run(warm_env, "apollo", "--session-id", "local", input="Say hello.")
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    assert warm.served() == 1
    (reply,) = [text for role, text in messages(sessions_dir, "local") if role == "assistant"]
    assert reply.strip() in result.stdout.decode()
