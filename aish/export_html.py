"""A session's history as one self-contained HTML page: a tree sidebar, the transcript, search.

The page is opened from disk and often passed around, so it must work offline and must not
let anything a model wrote act as markup or code:

* it loads nothing: CSS and JS are inline, there is no URL in it, and a Content-Security-Policy
  of ``default-src 'none'`` makes a browser refuse any fetch even if one slipped in;
* every stored text is HTML-escaped (after redaction and after terminal controls, which are not
  valid HTML characters either, are neutralised), and the JS data is JSON with ``<``, ``>``,
  ``&`` and the JS line separators escaped, so ``</script>`` in a message stays text;
* the script never writes HTML strings: highlighting builds text nodes and ``<mark>``.

Every message is on the page, each with an anchor ``#m-<id>``; ``#b-<name>`` shows a branch's
path. Without a hash the checked-out branch is shown.
"""

from __future__ import annotations

import hashlib
import html
import json

from aish.exports import path_of
from aish.history import History, Node, Text, first_line
from aish.humanize import when
from aish.messages import USER
from aish.sanitize import sanitize

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")
TREE_LABEL_CHARS = 48


def esc(text: str) -> str:
    return html.escape(sanitize(text), quote=True)


def script_json(value) -> str:
    """JSON that can sit inside a <script> element: nothing in it can end the element."""
    text = json.dumps(value, separators=(",", ":"))
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                       ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return text


def hue(name: str) -> int:
    """A colour per specialist that stays the same across pages and sessions."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "replace")).digest()[:2]) % 360


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Page:
    def __init__(self, history: History, text: Text):
        self.h = history
        self.text = text
        self.ais = sorted({n.message.ai for n in history.nodes.values()})
        self.colour = {ai: i for i, ai in enumerate(self.ais)}
        self.branch = history.current if history.current in history.refs else "main"

    def ai_class(self, ai: str) -> str:
        return f"ai{self.colour[ai]}"

    def who(self, node: Node) -> str:
        m = node.message
        name = f'<span class="ai {self.ai_class(m.ai)}">{esc(m.ai)}</span>'
        if m.role == USER:
            return f'<span class="user">user</span> \u2192 {name}'
        return name + (f' <span class="badge">{esc(m.note)} note</span>' if m.note else "")

    def tags(self, mid: str) -> str:
        return "".join(
            f'<a class="tag{" cur" if name == self.h.current else ""}" '
            f'href="#b-{esc(name)}">{esc(name)}{"*" if name == self.h.current else ""}</a>'
            for name in self.h.heads.get(mid, []))

    # -- the sidebar ---------------------------------------------------------------------------

    def branches(self) -> str:
        rows = []
        for name in sorted(self.h.refs, key=lambda n: (n != self.branch, n)):
            path = path_of(self.h, name)
            tokens = sum(n.tokens or 0 for n in path)
            mark = " (checked out)" if name == self.h.current else ""
            rows.append(f'<li><a class="branch" id="b-{esc(name)}" href="#b-{esc(name)}">'
                        f'<b>{esc(name)}</b>{mark}<small>{plural(len(path), "message")}, '
                        f'{plural(tokens, "token")}</small></a></li>')
        return "\n".join(rows)

    def tree_row(self, node: Node) -> str:
        m = node.message
        line = sanitize(self.text(first_line(m.content)))
        if len(line) > TREE_LABEL_CHARS:
            line = line[:TREE_LABEL_CHARS - 1] + "\u2026"
        who = "user" if m.role == USER else m.ai
        return (f'<li><a class="t {self.ai_class(m.ai)}" href="#m-{esc(m.id)}" '
                f'data-id="{esc(m.id)}"><span class="n">{node.number}</span> '
                f'<span class="w">{esc(who)}</span> {html.escape(line)}</a>'
                f'{self.tags(m.id)}</li>')

    def tree(self) -> str:
        """Nested lists: a straight run is one list, each side of a fork a nested one."""
        out: list[str] = []
        pending: list[str | tuple[str]] = [(root,) for root in reversed(self.h.roots)]
        while pending:  # no recursion: a log may hold thousands of forks
            item = pending.pop()
            if isinstance(item, str):
                out.append(item)
                continue
            run = self.h.run_from(item[0])
            out += [self.tree_row(node) for node in run]
            kids = run[-1].children
            if len(kids) > 1:
                pending.append("</ul></li>")
                for i, kid in reversed(list(enumerate(kids, 1))):
                    pending += ["</ul></li>", (kid,),
                                f'<li class="side"><span class="sl">side {i}/{len(kids)}'
                                f'</span><ul>']
                pending.append('<li class="fork"><ul>')
        return "\n".join(out)

    # -- the transcript ------------------------------------------------------------------------

    def message(self, node: Node, shown: set[str]) -> str:
        m = node.message
        usage = m.usage
        tokens = ""
        if usage is not None:
            tokens = (f'<span class="tok" title="prompt {usage.prompt_tokens} + completion '
                      f'{usage.completion_tokens}">{plural(node.tokens or 0, "token")}</span>')
        flags = "".join(f'<span class="badge">{what}</span>' for what, on in (
            ("interrupted", m.interrupted), ("cut at max_tokens", m.cut)) if on)
        model = f'<span class="model">{esc(m.model)}</span>' if m.model else ""
        kind = "asked" if m.role == USER else "reply"
        hidden = "" if m.id in shown else " hidden"
        return (f'<article class="msg {kind} {self.ai_class(m.ai)}{hidden}" id="m-{esc(m.id)}" '
                f'data-parent="{esc(m.parent or "")}">\n'
                f'<header><a class="num" href="#m-{esc(m.id)}">{node.number}</a> {self.who(node)}'
                f' <time>{esc(when(m.time))}</time> {model}{flags}{tokens}{self.tags(m.id)}'
                f'</header>\n'
                f'<div class="body">{esc(self.text(m.content))}</div>\n</article>')

    def render(self) -> str:
        h = self.h
        path = path_of(h, self.branch)
        shown = {n.message.id for n in path}
        total = sum(n.tokens or 0 for n in h.nodes.values())
        data = {"refs": h.refs, "current": self.branch,
                "tokens": {mid: n.tokens or 0 for mid, n in h.nodes.items()}}
        colours = "\n".join(
            f".ai{i}{{--c:hsl({hue(ai)},60%,40%);--bg:hsl({hue(ai)},70%,96%)}}"
            for i, ai in enumerate(self.ais))
        branches = f"{len(h.refs)} branch{'' if len(h.refs) == 1 else 'es'}"
        summary = f"{plural(len(h.nodes), 'message')}, {branches}, {plural(total, 'token')} in all"
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>aish session {esc(h.sid)}</title>
<style>
{STYLE}
{colours}
</style>
</head>
<body>
<aside id="side">
<h1>Session <code>{esc(h.sid)}</code></h1>
<p class="sum">{summary}</p>
<input id="q" type="search" placeholder="Search messages" aria-label="Search messages"
autocomplete="off">
<p id="hits"></p>
<h2>Branches</h2>
<ul class="branches">
{self.branches()}
</ul>
<h2>Tree</h2>
<ul class="tree">
{self.tree()}
</ul>
</aside>
<main id="main">
<h2 id="title">Branch <b>{esc(self.branch)}</b> (checked out): {plural(len(path), "message")},
{plural(sum(n.tokens or 0 for n in path), "token")}</h2>
{chr(10).join(self.message(node, shown) for node in h.nodes.values())}
</main>
<script>
const DATA = {script_json(data)};
{SCRIPT}
</script>
</body>
</html>
"""


def render_html(history: History, text: Text) -> str:
    return _Page(history, text).render()


STYLE = """
*{box-sizing:border-box}
body{margin:0;display:flex;height:100vh;font:15px/1.5 system-ui,-apple-system,"Segoe UI",
sans-serif;color:#1d2330;background:#f6f7f9}
aside{width:340px;flex:none;overflow:auto;padding:14px 16px;background:#fff;
border-right:1px solid #dde1e7;font-size:13px}
main{flex:1;overflow:auto;padding:18px 28px 60px}
h1{font-size:16px;margin:0 0 4px}h1 code{font-size:13px}
h2{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#667;margin:18px 0 6px}
main>h2{font-size:15px;text-transform:none;letter-spacing:0;color:#1d2330;margin:0 0 14px}
.sum{margin:0 0 10px;color:#556}
#q{width:100%;padding:6px 8px;border:1px solid #c8ced8;border-radius:6px;font:inherit}
#hits{margin:4px 0 0;color:#667;min-height:1em}
ul{list-style:none;margin:0;padding:0}
.branches a{display:block;padding:4px 8px;border-radius:6px;color:inherit;text-decoration:none}
.branches a:hover{background:#eef1f5}.branches a.shown{box-shadow:inset 3px 0 #2f6fec}
.branches small{display:block;color:#667}
.tree ul{margin-left:10px;padding-left:8px;border-left:2px solid #e3e6ec}
.tree li{display:flex;align-items:baseline;white-space:nowrap}
.tree li.fork,.tree li.side{display:block}
.tree a.t{flex:0 1 auto;min-width:0;color:#333;text-decoration:none;
border-left:3px solid var(--c);padding:0 5px;overflow:hidden;text-overflow:ellipsis}
.tree .tag{flex:none}
.tree a.t:hover{background:#eef1f5}.tree .n{color:#889}.tree .w{color:var(--c);font-weight:600}
.sl{color:#99a;font-size:11px}
.tag{font-size:11px;margin-left:4px;padding:0 5px;border-radius:8px;background:#e8ebf0;
color:#334;text-decoration:none}.tag.cur{background:#1d2330;color:#fff}
.msg{background:#fff;border:1px solid #dde1e7;border-left:4px solid var(--c);border-radius:8px;
padding:10px 14px;margin:0 0 12px;max-width:900px}
.msg.asked{background:var(--bg)}.msg.hidden{display:none}
header{font-size:13px;color:#556;margin-bottom:6px;display:flex;gap:8px;flex-wrap:wrap;
align-items:baseline}
.num{color:#889;text-decoration:none;font-weight:600}.num:hover{text-decoration:underline}
.ai{color:var(--c);font-weight:700}.user{font-weight:700;color:#334}
.tok{margin-left:auto;color:#667}.model{color:#889;font-family:ui-monospace,monospace}
.badge{font-size:11px;padding:0 6px;border-radius:8px;background:#fdecc8;color:#7a5200}
.body{white-space:pre-wrap;overflow-wrap:anywhere;font-size:14.5px}
.selected{outline:2px solid #2f6fec;outline-offset:2px}
a.t.selected,.branches a.selected{background:#e3ecfd;outline:none}
mark{background:#ffe066;padding:0 1px;border-radius:2px}
.tree a.match{background:#fff3bf}
"""

# Plain DOM calls only (no innerHTML), so nothing from the data is ever parsed as markup.
SCRIPT = r"""
(function () {
  "use strict";
  var main = document.getElementById("main");
  var box = document.getElementById("q"), hits = document.getElementById("hits");
  var msgs = Array.prototype.slice.call(document.querySelectorAll("article.msg"));
  var byId = {}, texts = {};
  msgs.forEach(function (a) {
    byId[a.id.slice(2)] = a;
    texts[a.id] = a.querySelector(".body").textContent;
  });
  var shown = DATA.current;
  function pathTo(id) {
    var out = [], seen = {};
    while (id && byId[id] && !seen[id]) {
      seen[id] = 1;
      out.push(id);
      id = byId[id].dataset.parent;
    }
    return out.reverse();
  }
  function show(ids, title) {
    var on = {};
    ids.forEach(function (id) { on[id] = 1; });
    msgs.forEach(function (a) { a.classList.toggle("hidden", !on[a.id.slice(2)]); });
    var tokens = 0;
    ids.forEach(function (id) { tokens += DATA.tokens[id] || 0; });
    var h = document.getElementById("title");
    h.textContent = "";
    var b = document.createElement("b");
    b.textContent = title;
    h.appendChild(b);
    h.appendChild(document.createTextNode(": " + ids.length + " message" +
      (ids.length === 1 ? "" : "s") + ", " + tokens + " token" + (tokens === 1 ? "" : "s")));
  }
  function showBranch(name) {
    shown = name;
    document.querySelectorAll("a.branch").forEach(function (b) {
      b.classList.toggle("shown", b.id === "b-" + name);
    });
    show(pathTo(DATA.refs[name]), "Branch " + name +
      (name === DATA.current ? " (checked out)" : ""));
  }
  function branchHolding(id) {
    var names = Object.keys(DATA.refs).sort();
    names.unshift(shown, DATA.current);
    for (var i = 0; i < names.length; i++) {
      if (DATA.refs[names[i]] !== undefined && pathTo(DATA.refs[names[i]]).indexOf(id) >= 0) {
        return names[i];
      }
    }
    return null;
  }
  function clearSelected() {
    document.querySelectorAll(".selected").forEach(function (e) {
      e.classList.remove("selected");
    });
  }
  function select() {
    var hash = "";
    try { hash = decodeURIComponent(location.hash.slice(1)); } catch (e) { hash = ""; }
    clearSelected();
    if (hash.slice(0, 2) === "q=") {  /* a link to a search */
      box.value = hash.slice(2);
      search();
      return;
    }
    if (hash.slice(0, 2) === "b-" && DATA.refs[hash.slice(2)] !== undefined) {
      showBranch(hash.slice(2));
      document.getElementById(hash).classList.add("selected");
      main.scrollTop = 0;
      return;
    }
    if (hash.slice(0, 2) === "m-" && byId[hash.slice(2)]) {
      var id = hash.slice(2), name = branchHolding(id);
      if (name !== null) showBranch(name);
      else show(pathTo(id), "Path to message " + byId[id].querySelector(".num").textContent);
      var el = byId[id];
      el.classList.add("selected");
      document.querySelectorAll("a.t").forEach(function (t) {
        if (t.dataset.id === id) t.classList.add("selected");
      });
      el.scrollIntoView({block: "center"});
      return;
    }
    showBranch(shown);
  }
  msgs.forEach(function (a) {
    a.addEventListener("click", function (ev) {
      if (ev.target.closest("a") || String(window.getSelection())) return;
      location.hash = a.id;
    });
  });
  function highlight(body, text, q) {
    body.textContent = "";
    var lower = text.toLowerCase(), at = 0, i;
    while (q && (i = lower.indexOf(q, at)) >= 0) {
      body.appendChild(document.createTextNode(text.slice(at, i)));
      var m = document.createElement("mark");
      m.textContent = text.slice(i, i + q.length);
      body.appendChild(m);
      at = i + q.length;
    }
    body.appendChild(document.createTextNode(text.slice(at)));
  }
  function search() {
    var q = box.value.trim().toLowerCase(), found = {}, count = 0;
    msgs.forEach(function (a) {
      var text = texts[a.id], hit = q !== "" && text.toLowerCase().indexOf(q) >= 0;
      highlight(a.querySelector(".body"), text, hit ? q : "");
      if (hit) { found[a.id.slice(2)] = 1; count++; }
    });
    document.querySelectorAll("a.t").forEach(function (t) {
      t.classList.toggle("match", !!found[t.dataset.id]);
    });
    if (q === "") { hits.textContent = ""; showBranch(shown); return; }
    msgs.forEach(function (a) { a.classList.toggle("hidden", !found[a.id.slice(2)]); });
    hits.textContent = count + " message" + (count === 1 ? "" : "s") + " match";
    document.getElementById("title").textContent = "Search: every branch";
  }
  box.addEventListener("input", search);
  window.addEventListener("hashchange", select);
  select();
})();
"""
