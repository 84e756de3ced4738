"""Entry points: `aish` and one per specialist. Parses nothing itself; hands argv to dispatch."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys

from aish import errors


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        invoked = os.path.basename(sys.argv[0])
        if invoked not in ("aish", "__main__.py", "-c", ""):  # a shim: `sherlock` = `aish sherlock`
            argv = [invoked, *argv]
        code = None if _management(argv) else _warm(argv)
        if code is not None:
            return code
    argv = list(argv)
    if _management(argv):
        # A management command lives for milliseconds and what it allocates while importing
        # lives as long: collecting cycles every 700 allocations (the default) only costs
        # time there, so collect rarely (mypy does the same for its build).
        import gc

        gc.set_threshold(50_000, 20, 20)
    from aish.commands.context import Context

    ctx = Context()
    _replace_invalid_stdin(ctx)
    from aish.shell.hooks import install

    install(ctx)
    try:
        code = _run(ctx, argv)
    except errors.Interrupted as exc:
        ctx.out.note(f"aish: {exc}")
        code = exc.exit_code
    except errors.AishError as exc:
        ctx.out.error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        ctx.out.note("interrupted")
        code = errors.INTERRUPTED
    except BrokenPipeError:  # a write that did not go through Output
        ctx.out.drop_stdout()
        code = errors.BROKEN_PIPE
    except OSError as exc:  # e.g. a path too long for the file system, a missing directory
        ctx.out.error(_os_error(exc))
        code = errors.STORAGE
    cache = sys.modules.get("aish.configcache")  # loaded only if the config was read
    if code == 0 and cache is not None:
        cache.flush()
    if ctx.out.stdout_error is not None:
        ctx.out.error(f"cannot write standard output: {ctx.out.stdout_error}")
        return errors.STORAGE
    if ctx.out.broken_pipe:  # the reply was still read and stored; say the output was cut
        return errors.BROKEN_PIPE
    return code


def _management(argv: list[str]) -> bool:
    """A management command (`aish --list-sessions`): a flag first that does not start an
    exchange. These run in-process and never load the warm process's client."""
    words = argv[1:] if argv and argv[0] == "aish" else argv
    return bool(words) and words[0].startswith("-") and words[0] not in ("-c", "--continue")


def _run(ctx, argv: list[str]) -> int:
    if not argv:
        from aish.shell.repl import run_shell

        return run_shell(ctx)
    from aish.commands.dispatch import run

    return run(ctx, argv)


def _os_error(exc: OSError) -> str:
    cause = exc.strerror or exc.__class__.__name__
    if exc.filename is None:
        return cause
    shown = repr(str(exc.filename))
    if len(shown) > 80:
        shown = shown[:60] + "..." + shown[-16:]
    return f"{shown}: {cause}"


def _replace_invalid_stdin(ctx) -> None:
    """Piped stdin is read as UTF-8; invalid bytes become U+FFFD with one warning, so a line
    never reaches a session (or a provider) carrying undecodable surrogates."""
    stream = sys.stdin
    if stream is None or ctx.stdin is not None or ctx.stdin_is_tty:
        return
    warned: list[bool] = []

    def replace(exc: UnicodeError) -> tuple[str, int]:
        if not warned:
            warned.append(True)
            ctx.out.warn("stdin is not valid UTF-8; invalid bytes were replaced")
        if not isinstance(exc, UnicodeDecodeError):
            raise exc
        return "\ufffd", exc.end

    codecs.register_error("aish-stdin", replace)
    # Not a real text stream (e.g. under a test), or already read from: leave it as it is.
    with contextlib.suppress(AttributeError, ValueError, OSError):
        # typeshed's TextIO has no reconfigure (TextIOWrapper does); other streams are
        # caught by the suppress above.
        stream.reconfigure(encoding="utf-8", errors="aish-stdin")  # type: ignore[union-attr]


def _warm(argv: list[str]) -> int | None:
    """The command's exit code when the warm process ran it; None: run it here."""
    from aish.warm.client import attempt

    return attempt(argv, sys.argv[0])


def _specialist(name: str):
    def entry() -> int:
        argv = [name, *sys.argv[1:]]
        code = _warm(argv)
        return main(argv) if code is None else code

    entry.__name__ = name
    return entry


apollo = _specialist("apollo")
athena = _specialist("athena")
prometheus = _specialist("prometheus")
hermes = _specialist("hermes")
