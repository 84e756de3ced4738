"""A session's history written for people and diagram tools: Markdown, Mermaid, DOT, JSON,
and a self-contained HTML page (aish.export_html).

Each format takes a built `aish.history.History` and a ``text`` function every piece of stored
text passes through (redaction). Diagram labels are escaped for their language so that nothing
a model wrote can close a label or add nodes: Mermaid labels keep only letters, digits and a few
marks, the rest as ``#code;`` entities; DOT labels are quoted with ``\\`` and ``"`` escaped.
Node names are generated (``n1``, ``n2``, ...), never taken from the log.
"""

from __future__ import annotations

import json
import re

from aish.history import History, Node, Text, first_line
from aish.humanize import when
from aish.sanitize import sanitize

FORMATS = ("md", "mermaid", "dot", "json", "html", "cast")
CAST_WIDTH, CAST_HEIGHT = 100, 30
LABEL_CHARS = 60  # of a message's first line in a diagram


def render(history: History, fmt: str, text: Text, now: float = 0.0,
           environ: dict | None = None) -> str:
    if fmt == "cast":
        return cast(history, text, now, environ or {})
    if fmt == "md":
        return markdown(history, text)
    if fmt == "html":
        from aish.export_html import render_html

        return render_html(history, text)
    if fmt == "json":
        return json.dumps(history.to_json(text, content=True), indent=2)
    return diagram(history, text, mermaid=fmt == "mermaid")


def path_of(history: History, branch: str) -> list[Node]:
    out: list[Node] = []
    mid = history.refs.get(branch, "")
    while mid and mid in history.nodes and len(out) <= len(history.nodes):
        out.append(history.nodes[mid])
        mid = history.nodes[mid].message.parent or ""
    out.reverse()
    return out


def markdown(history: History, text: Text) -> str:
    """A transcript of the checked-out branch, with a list of the other branches."""
    branch = history.current if history.current in history.refs else "main"
    path = path_of(history, branch)
    lines = [f"# Session {history.sid}", "",
             f"Branch `{branch}` (checked out), {len(path)} message"
             f"{'' if len(path) == 1 else 's'}."]
    others = sorted(name for name in history.refs if name != branch)
    if others:
        lines += ["", "Other branches:", ""]
        for name in others:
            count = len(path_of(history, name))
            lines.append(f"- `{name}`: {count} message{'' if count == 1 else 's'}")
    for node in path:
        m = node.message
        tokens = f", {node.tokens} tokens" if node.tokens else ""
        lines += ["", f"## {node.number}. {node.who()} ({when(m.time)}{tokens})", "",
                  text(m.content).rstrip() or "_(empty)_"]
    return "\n".join(lines)


def cast(history: History, text: Text, now: float, environ: dict) -> str:
    """An asciicast v2 recording of the checked-out branch as `aish --replay-session` plays it:
    a header line (its timestamp: the first message's), then ``[t, "o", output]`` events
    (rendered at a fixed width, replies as plain text so they stream as they were written) and
    a ``[t, "m", label]`` marker at every user turn."""
    import io

    from rich.console import Console

    from aish import playback
    from aish.render import StreamRenderer
    from aish.theme import load_theme

    branch = history.current if history.current in history.refs else "main"
    path = path_of(history, branch)
    buffer = io.StringIO()
    console = Console(file=buffer, width=CAST_WIDTH, height=CAST_HEIGHT, force_terminal=True,
                      color_system="256", highlight=False, theme=load_theme().rich)
    screen = playback.Screen(console, lambda prefix: StreamRenderer(
        console, prefix=prefix, markdown=False))
    header = {"version": 2, "width": CAST_WIDTH, "height": CAST_HEIGHT,
              "timestamp": int(path[0].message.time if path else now),
              "title": f"aish session {history.sid} ({branch})",
              "env": {"TERM": environ.get("TERM") or "xterm-256color",
                      "SHELL": environ.get("SHELL") or "/bin/sh"}}
    lines = [json.dumps(header)]
    frames = playback.frames([node.message for node in path], text=text)
    for frame in frames:
        if frame.kind == playback.USER_LINE:
            node = path[frame.index]
            said = frame.text[len(playback.prompt_line(node.message, "")):]  # redacted
            label = sanitize(first_line(said))[:LABEL_CHARS]
            lines.append(json.dumps([frame.at, "m", f"{node.number}. {label}"]))
        screen.show(frame)
        if frame is frames[-1]:
            screen.close()
        output, _ = buffer.getvalue(), buffer.truncate(0)
        buffer.seek(0)
        if output:
            lines.append(json.dumps([frame.at, "o", output.replace("\n", "\r\n")]))
    return "\n".join(lines)


_MERMAID_SAFE = re.compile(r"[^A-Za-z0-9 .,:_-]")


def mermaid_label(value: str) -> str:
    return '"' + _MERMAID_SAFE.sub(lambda m: f"#{ord(m.group())};", value) + '"'


def dot_label(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(node: Node, text: Text) -> str:
    line = sanitize(text(first_line(node.message.content)))
    if len(line) > LABEL_CHARS:
        line = line[:LABEL_CHARS - 3] + "..."
    return f"{node.number} {node.who('->')}: {line}"


def diagram(history: History, text: Text, mermaid: bool) -> str:
    """The whole tree: a node per message, an edge per parent link, a dashed one per branch."""
    names = {mid: f"n{i}" for i, mid in enumerate(history.nodes, 1)}
    quote = mermaid_label if mermaid else dot_label
    out = ["flowchart TD"] if mermaid else [
        f"digraph {dot_label('session ' + history.sid)} {{", "  node [shape=box];"]
    for mid, node in history.nodes.items():
        label = quote(_label(node, text))
        out.append(f"  {names[mid]}[{label}]" if mermaid else f"  {names[mid]} [label={label}];")
    for mid, node in history.nodes.items():
        for child in node.children:
            out.append(f"  {names[mid]} --> {names[child]}" if mermaid
                       else f"  {names[mid]} -> {names[child]};")
    if history.refs:
        root = "root"
        out.append(f"  {root}(({quote('start')}))" if mermaid
                   else f"  {root} [label={quote('start')}, shape=circle];")
        for node_mid in history.roots:
            out.append(f"  {root} --> {names[node_mid]}" if mermaid
                       else f"  {root} -> {names[node_mid]};")
    for i, (name, head) in enumerate(sorted(history.refs.items()), 1):
        label = quote(name + ("*" if name == history.current else ""))
        target = names.get(head, "root")
        if mermaid:
            out += [f"  b{i}([{label}])", f"  b{i} -.-> {target}"]
        else:
            out += [f"  b{i} [label={label}, shape=ellipse, style=dashed];",
                    f"  b{i} -> {target} [style=dashed];"]
    if not mermaid:
        out.append("}")
    return "\n".join(out)
