"""Key bindings of the shell's prompt, beyond prompt_toolkit's Emacs defaults.

- Esc-Enter (what terminals send for Alt-Enter) inserts a newline, so a message can span
  lines while Enter still sends it;
- Ctrl-X Ctrl-E opens the input in $VISUAL/$EDITOR and runs it when the editor exits
  (prompt_toolkit's own binding, switched on with ``enable_open_in_editor``);
- Alt-Left / Alt-Right (Esc then an arrow, as terminals send them) flip to the older or newer
  side of the fork in view in session mode, by running `flip prev` / `flip next`; only while
  the prompt says there is such a side, so elsewhere they keep their usual meaning;
- Ctrl-C clears the line and Ctrl-D on an empty line leaves (prompt_toolkit's defaults,
  turned into KeyboardInterrupt/EOFError for the loops).
"""

from __future__ import annotations

from collections.abc import Callable


def load_bindings():
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


def flip_bindings(can_flip: Callable[[int], bool]):
    """Alt-Left / Alt-Right: leave the prompt with the `flip` command (KeyCommand), keeping
    what was typed. ``can_flip(step)``: whether there is a side ``step`` (-1, +1) away."""
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings

    from aish.shell.lines import KeyCommand

    bindings = KeyBindings()

    def add(key: str, step: int, line: str) -> None:
        @bindings.add("escape", key, filter=Condition(lambda: can_flip(step)))
        def _flip(event) -> None:
            draft = event.current_buffer.text
            event.current_buffer.reset()  # the line left on screen must not look sent
            event.app.exit(exception=KeyCommand(line, draft))

    add("left", -1, "flip prev")
    add("right", 1, "flip next")
    return bindings


def continuation(width: int, line_number: int, wrap_count: int) -> str:
    """What starts the second and later lines of a multi-line input: dots under the prompt."""
    return "." * max(0, width - 1) + " "
