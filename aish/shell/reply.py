"""One exchange in session mode, as the user sees it: the reply streams in after its
`apollo> ` prefix, with a spinner below it until it is done.

The renderer prints a Markdown block once it is complete (a paragraph at its blank line, a code
fence at its closing fence). Until then the block's text is shown as it arrives, as plain text,
in a live area at the bottom: the last few rows of the open block (`StreamRenderer.live_preview`,
sanitised) and under them a spinner that says "thinking" until the first token, then "writing".
When a block completes Rich prints it rendered above the live area, and it leaves the preview.
The live area is a few rows high whatever the reply's length and is redrawn at a fixed rate, so
showing it costs constant time per redraw. It is transient: gone once the reply ends.

Without colour the reply is plain text written as it arrives, so there is nothing to preview
and the spinner goes at the first token instead.

Ctrl-C while the reply streams is caught by `Session.exchange`, which keeps what arrived marked
interrupted; here we only make sure the live area is gone and what arrived is on the screen.
"""

from __future__ import annotations

PREVIEW_ROWS = 6
REFRESH_PER_SECOND = 12.5  # as rich's Status: smooth dots, bounded redraw cost


class _LiveStatus:
    """The live area below a streaming reply on a terminal; nothing otherwise. Safe to stop
    twice."""

    def __init__(self, ctx, name: str, renderer):
        self._live = None
        self._name = name
        self._through_reply = renderer.markdown
        self._writing = False
        if ctx.out.stdout_tty:
            from rich.console import Group
            from rich.live import Live
            from rich.spinner import Spinner
            from rich.text import Text

            self._spinner = Spinner("dots", text=Text(f"{name} is thinking…"),
                                    style="aish.spinner")
            parts = [self._spinner]
            if renderer.markdown:
                parts.insert(0, renderer.live_preview(PREVIEW_ROWS))
            group = Group(*parts)
            self._live = Live(console=ctx.out.console(), get_renderable=lambda: group,
                              refresh_per_second=REFRESH_PER_SECOND, transient=True)

    def __enter__(self):
        if self._live is not None:
            self._live.start()
        return self

    def text_arrived(self) -> None:
        if self._writing or self._live is None:
            return
        self._writing = True
        if self._through_reply:
            from rich.text import Text

            self._spinner.update(text=Text(f"{self._name} is writing…"))
        else:
            self.stop()

    def stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def __exit__(self, *exc) -> None:
        self.stop()


def show_streaming(ctx, name: str, produce):
    """Run ``produce(on_text)`` while showing the text it streams: the `name> ` prefix, the
    live preview of the open block and the spinner. Returns what ``produce`` returns."""
    renderer = ctx.out.reply_renderer(prefix=f"{name}> ")
    with _LiveStatus(ctx, name, renderer) as status:

        def on_text(chunk: str) -> None:
            status.text_arrived()
            renderer.feed(chunk)

        try:
            return produce(on_text)
        finally:
            try:
                renderer.finish()  # printed above the live area, which then goes
            finally:
                status.stop()
