"""What the interactive face lends the commands (see `Context.present_reply/enter_session`).

The wrappers import the shell's modules only when called, so installing them costs nothing on
the paths that never use them (listing sessions must not load prompt_toolkit).
"""

from __future__ import annotations


def enter_session(ctx, specialist, session, *, provider=None, model=None, recap=0) -> int:
    from aish.shell.session_mode import run_session_mode

    return run_session_mode(ctx, specialist, session, provider=provider, model=model,
                            recap=recap)


def present_reply(ctx, name: str, produce):
    from aish.shell.reply import show_streaming

    return show_streaming(ctx, name, produce)


def install(ctx, *, in_shell: bool = False) -> None:
    """Session mode is always reachable from a terminal; rendered replies only in the shell."""
    ctx.enter_session = enter_session
    if in_shell and ctx.out.stdout_tty:
        ctx.present_reply = present_reply
