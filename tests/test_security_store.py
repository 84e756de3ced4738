"""The file store on a hostile or careless disk: links inside the session dir are never written
through, one bad log does not break store-wide commands, modes are private whatever the umask,
and a session whose owner was lost can be continued."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, run
from manage_support import log_path, make_session, ok, stderr

from aish.store.filestore import FileStore


def tree_hashes(top: Path, skip: Path) -> dict[str, str]:
    """Every file below ``top`` except those below ``skip``, aish's own audit log, its note of
    the session this user last talked in (for `-c`), its search index (a cache of the
    sessions, kept up to date as they are written) and its cache of the parsed config."""
    out = {}
    for folder, dirs, files in os.walk(top):
        if Path(folder) == skip or skip in Path(folder).parents:
            dirs[:] = []
            continue
        for name in files:
            path = Path(folder) / name
            if (name not in ("audit.log", "last-sessions.json", ".config-cache.json")
                    and Path(folder).name != "search"):
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_error_line(proc) -> str:
    lines = stderr(proc).strip().splitlines()
    assert b"Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("aish: error:"), lines
    return lines[0]


def link_away(sessions_dir: Path, name: str, outside: Path) -> None:
    target = sessions_dir / name
    if target.is_dir():
        shutil.rmtree(target)
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("not aish's\n")
    target.symlink_to(outside, target_is_directory=True)


# Each directory aish writes below the session dir, and a command that writes there.
WRITERS = {
    "backup": ("aish", "--prune-session", "s", "--keep-recent", "1"),
    "templates": ("aish", "--save-template", "tpl", "s"),
    ".locks": ("apollo", "--session-id", "s", "hello"),
    "checkpoints": ("aish", "--session", "apollo", "--session-id", "s"),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_linked_directory_is_refused_and_nothing_outside_changes(env, sessions_dir, tmp_path,
                                                                   name):
    make_session(env, "s", pairs=3)
    before_log = log_path(env, "s").read_bytes()
    link_away(sessions_dir, name, tmp_path / "outside")
    before = tree_hashes(tmp_path, sessions_dir)
    assert str(tmp_path / "outside" / "keep.txt") in before

    script = "save cp1\n" if name == "checkpoints" else None
    proc = run(env, *WRITERS[name], input=script)
    if name == "checkpoints":  # session mode reports the failed command and carries on
        assert b"Traceback" not in proc.stderr
        errors = [x for x in stderr(proc).splitlines() if x.startswith("aish: error:")]
        assert len(errors) == 1 and f"{sessions_dir / name} is a symbolic link" in errors[0]
    else:
        assert proc.returncode == 5, stderr(proc)
        line = one_error_line(proc)
        assert f"{sessions_dir / name} is a symbolic link" in line
    assert tree_hashes(tmp_path, sessions_dir) == before
    assert sorted(os.listdir(tmp_path / "outside")) == ["keep.txt"]
    if name == "backup":  # the prune did not happen without its backup
        assert log_path(env, "s").read_bytes() == before_log


@pytest.mark.parametrize("name", list(WRITERS))
def test_no_writer_goes_through_any_linked_directory(env, sessions_dir, tmp_path, name):
    """Every command that writes, with each directory linked away: it works without that
    directory or stops with one line; nothing outside the session dir changes either way."""
    make_session(env, "s", pairs=3)
    link_away(sessions_dir, name, tmp_path / "outside")
    before = tree_hashes(tmp_path, sessions_dir)
    for argv in WRITERS.values():
        proc = run(env, *argv, input="save cp2\n" if "--session" in argv else None)
        assert b"Traceback" not in proc.stderr
        if proc.returncode:
            assert proc.returncode == 5 and "symbolic link" in one_error_line(proc), argv
        assert tree_hashes(tmp_path, sessions_dir) == before, argv


def test_a_linked_log_is_skipped_by_store_wide_commands(aish, home, sessions_dir, tmp_path):
    make_session(home, "good", pairs=2)
    make_session(home, "victim", pairs=1)
    outside = tmp_path / "outside.jsonl"
    shutil.copy(log_path(home, "victim"), outside)
    log_path(home, "victim").unlink()
    log_path(home, "victim").symlink_to(outside)
    loop = log_path(home, "loop")
    loop.symlink_to(loop)  # "Too many levels of symbolic links"
    log_path(home, "folder").mkdir()  # not a file at all: unreadable as a log
    before = outside.read_bytes()

    for argv in (("--list-sessions", "--all"), ("--session-stats",), ("--export-sessions",),
                 ("--search-sessions", "question"), ("--cleanup-sessions", "--dry-run")):
        proc = aish("aish", *argv)
        assert proc.returncode == 0, (argv, stderr(proc))
        assert b"Traceback" not in proc.stderr
        warnings = [w for w in stderr(proc).splitlines() if "warning: skipping" in w]
        skipped = sorted(w.split()[4] for w in warnings)
        assert skipped == ["folder:", "loop:", "victim:"], (argv, warnings)
    listing = json.loads(ok(aish("aish", "--list-sessions", "--all", "--json")))
    assert [s["id"] for s in listing] == ["good"]

    proc = aish("aish", "--validate-session", "victim")
    assert proc.returncode == 1 and "unusable log" in proc.stdout.decode()
    assert "symbolic link" in proc.stdout.decode()
    # Continuing, pruning or repairing it never writes through the link.
    for argv in (("apollo", "--session-id", "victim", "more"),
                 ("aish", "--prune-session", "victim", "--keep-recent", "0"),
                 ("aish", "--repair-session", "victim")):
        proc = aish(*argv)
        assert proc.returncode == 5, (argv, stderr(proc))
        assert "symbolic link" in one_error_line(proc)
    assert outside.read_bytes() == before
    assert log_path(home, "victim").is_symlink()


def umask0(env: dict, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True,
                          input=input.encode() if input else None, timeout=120,
                          preexec_fn=lambda: os.umask(0))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_fresh_store_is_private_under_umask_000(env, tmp_path):
    fresh = {**env, "HOME": str(tmp_path / "fresh")}
    proc = umask0(fresh, "apollo", "--session-id", "s", "hello")
    assert proc.returncode == 0, proc.stderr
    assert umask0(fresh, "aish", "--prune-session", "s", "--keep-recent", "0").returncode == 0
    assert umask0(fresh, "aish", "--save-template", "tpl", "s").returncode == 0
    aish_dir = tmp_path / "fresh" / ".aish"
    found = [aish_dir] + sorted(aish_dir.rglob("*"))
    assert len(found) > 6
    for path in found:
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, (path, oct(mode(path)))


def test_loose_modes_are_warned_about_and_repair_fixes_them(aish, home, sessions_dir):
    make_session(home, "s", pairs=1)
    make_session(home, "other", pairs=1)
    sessions_dir.chmod(0o777)
    log_path(home, "s").chmod(0o644)
    proc = aish("aish", "--list-sessions")
    warnings = [w for w in stderr(proc).splitlines() if "warning:" in w]
    assert len(warnings) == 2, warnings  # once per path, naming it
    assert any(f"{sessions_dir} is writable by others (mode 0777)" in w for w in warnings)
    assert any(f"{log_path(home, 's')} is readable by others (mode 0644)" in w for w in warnings)
    assert "writable by others" in stderr(aish("aish", "--session-info", "other"))

    repaired = aish("aish", "--repair-session", "s")
    assert "nothing to repair" in ok(repaired) and "Made private" in stderr(repaired)
    assert mode(sessions_dir) == 0o700 and mode(log_path(home, "s")) == 0o600
    proc = aish("aish", "--list-sessions")
    assert "warning" not in stderr(proc)


def test_repair_never_chmods_through_a_link(home, sessions_dir, tmp_path):
    make_session(home, "s", pairs=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o755)
    (outside / "s-20260101T000000-prune.jsonl").write_text("{}\n")
    (outside / "s-20260101T000000-prune.jsonl").chmod(0o644)
    for name in ("templates", "backup"):
        if (sessions_dir / name).exists():
            shutil.rmtree(sessions_dir / name)
        (sessions_dir / name).symlink_to(outside)
    FileStore(sessions_dir).fix_modes("s")
    assert mode(outside) == 0o755
    assert mode(outside / "s-20260101T000000-prune.jsonl") == 0o644


def test_a_session_whose_owner_was_lost_is_taken_by_the_first_to_continue_it(env, sessions_dir):
    # A header lost and only a meta record without an owner left: repair cannot tell whose it is.
    log = sessions_dir / "orphan.jsonl"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    log.write_text('{"t":"meta","state":"active"}\n')
    repaired = run(env, "aish", "--repair-session", "orphan")
    assert "the first specialist to continue it becomes its owner" in ok(repaired)

    proc = run(env, "athena", "--session-id", "orphan", "hello")
    assert proc.returncode == 0, stderr(proc)
    info = json.loads(ok(run(env, "aish", "--session-info", "orphan", "--json")))
    assert info["ai"] == "athena-ai" and info["participants"] == ["athena-ai"]
    # From then on it is athena's: another specialist needs --shared as usual.
    refused = run(env, "apollo", "--session-id", "orphan", "hi")
    assert refused.returncode == 7 and "belongs to athena-ai" in stderr(refused)


def test_repair_names_the_owner_it_derives_from_the_messages(aish, home):
    make_session(home, "lost", ai="hermes", pairs=2)
    lines = log_path(home, "lost").read_text().splitlines(keepends=True)
    log_path(home, "lost").write_text("".join(lines[1:]))  # the header is gone
    assert "owner hermes-ai" in ok(aish("aish", "--repair-session", "lost"))
    info = json.loads(ok(aish("aish", "--session-info", "lost", "--json")))
    assert info["ai"] == "hermes-ai"
