"""The `aish>` loop in-process: lines dispatched through the registry, errors survive, leaving."""

from __future__ import annotations

import io

import pytest
from fault_server import FaultServer

from aish.errors import UsageError
from aish.output import Output
from aish.shell.lines import StreamLines
from aish.shell.repl import ShellContext, loop, split_line


def shell(tmp_path, script: str, **environ) -> tuple[int, str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    ctx = ShellContext(environ={"HOME": str(home), **environ}, stdin=io.StringIO(""), out=out,
                       lines=StreamLines(io.StringIO(script)))
    status = loop(ctx)
    return status, out.stdout.getvalue(), out.stderr.getvalue()


def test_lines_run_through_the_registry_and_errors_do_not_stop_it(tmp_path):
    with FaultServer(chunks=["CQRS separates ", "reads from writes."]) as server:
        status, out, err = shell(
            tmp_path,
            "--version\n\nbogus words\naish --list-sessions\nathena what's CQRS?\n"
            "help athena\nexit\n--version\n",
            OPENAI_BASE_URL=server.base)
    assert out.count("aish 0.1.0") == 1  # nothing runs after `exit`
    assert "aish: error: unknown command or specialist 'bogus'" in err
    assert "No active sessions." in err
    assert "CQRS separates reads from writes." in out
    assert "usage: athena" in out
    assert server.requests[0]["messages"][-1]["content"] == "what's CQRS?"
    assert status == 0


def test_status_is_the_last_commands(tmp_path):
    assert shell(tmp_path, "--version\n--end-session nope\n")[0] == 3  # not found
    assert shell(tmp_path, "--end-session nope\n--version\n")[0] == 0


def test_quit_and_end_of_input_leave(tmp_path):
    assert shell(tmp_path, "quit\n--version\n")[1] == ""
    assert shell(tmp_path, "")[0] == 0


def test_split_line():
    class Ctx:
        specialists = {"athena": object()}

    assert split_line(Ctx(), 'apollo --session-id "my id"') == ["apollo", "--session-id", "my id"]
    assert split_line(Ctx(), "athena what's CQRS?") == ["athena", "what's", "CQRS?"]
    assert split_line(Ctx(), "athena-ai it's fine") == ["athena-ai", "it's", "fine"]
    with pytest.raises(UsageError):
        split_line(Ctx(), "--end-session 'unclosed")
