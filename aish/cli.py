"""Entry points: `aish` and one per specialist. Parses nothing itself; hands argv to dispatch."""

from __future__ import annotations

import os
import sys

from aish import errors


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        invoked = os.path.basename(sys.argv[0])
        if invoked not in ("aish", "__main__.py", "-c", ""):  # a shim: `sherlock` = `aish sherlock`
            argv = [invoked, *argv]
    argv = list(argv)
    from aish.commands.context import Context

    ctx = Context()
    from aish.shell.hooks import install

    install(ctx)
    try:
        if not argv:
            from aish.shell.repl import run_shell

            return run_shell(ctx)
        from aish.commands.dispatch import run

        return run(ctx, argv)
    except errors.AishError as exc:
        ctx.out.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.out.note("interrupted")
        return errors.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _specialist(name: str):
    def entry() -> int:
        return main([name, *sys.argv[1:]])

    entry.__name__ = name
    return entry


apollo = _specialist("apollo")
athena = _specialist("athena")
prometheus = _specialist("prometheus")
hermes = _specialist("hermes")
