"""Key bindings of the shell's prompt, beyond prompt_toolkit's Emacs defaults.

- Esc-Enter (what terminals send for Alt-Enter) inserts a newline, so a message can span
  lines while Enter still sends it;
- Ctrl-X Ctrl-E opens the input in $VISUAL/$EDITOR and runs it when the editor exits
  (prompt_toolkit's own binding, switched on with ``enable_open_in_editor``);
- Ctrl-C clears the line and Ctrl-D on an empty line leaves (prompt_toolkit's defaults,
  turned into KeyboardInterrupt/EOFError for the loops).
"""

from __future__ import annotations


def load_bindings():
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


def continuation(width: int, line_number: int, wrap_count: int) -> str:
    """What starts the second and later lines of a multi-line input: dots under the prompt."""
    return "." * max(0, width - 1) + " "
