"""`aish --export-session ID --format html`: one offline page, checked as markup (stdlib
html.parser) and in a real browser (headless Chromium: a screenshot, and the DOM after the
page's script ran for deep links and search)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import history_support
import pytest
from history_support import SECRET, ok

from aish.export_html import hue, script_json

tree = history_support.tree  # the module's session, a fixture

VOID = {"meta", "input", "br", "img", "hr", "link"}
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")


class Page(HTMLParser):
    """Elements by id, every attribute and text, and the nesting checked as it goes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.ids: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []
        self.text: dict[str, str] = {}  # id -> its text (for the elements with an id)
        self.data: list[str] = []
        self.open_ids: list[tuple[str, int]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        self.attrs += [(tag, k, v) for k, v in values.items()]
        if "id" in values:
            if values["id"] in self.ids:
                self.errors.append(f"duplicate id {values['id']}")
            self.ids[values["id"]] = {"tag": tag, **values}
        if tag not in VOID:
            self.stack.append(tag)
            if "id" in values:
                self.open_ids.append((values["id"], len(self.stack)))
                self.text[values["id"]] = ""

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        while self.open_ids and self.open_ids[-1][1] == len(self.stack):
            self.open_ids.pop()
        self.stack.pop()

    def handle_data(self, data):
        self.data.append(data)
        for name, _ in self.open_ids:
            self.text[name] += data

    def classes(self, element_id: str) -> set[str]:
        return set(self.ids[element_id].get("class", "").split())


def export(env, sid, *more) -> tuple[str, str]:
    result = ok(env, "aish", "--export-session", sid, "--format", "html", *more)
    return result.stdout.decode(), result.stderr.decode()


def nodes(env, sid) -> dict:
    return json.loads(ok(env, "aish", "--export-session", sid, "--format", "json").stdout)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt package chromium)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    result = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                             f"--user-data-dir={profile}", *args],
                            capture_output=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


def dom(tmp_path: Path, page: Path, fragment: str) -> Page:
    return Page(chromium(tmp_path, "--dump-dom",
                         f"{page.as_uri()}#{fragment}").stdout.decode())


def write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "session.html"
    page.write_text(text, encoding="utf-8")
    return page


def test_the_page_is_well_formed_offline_and_redacted(tree):
    env, sid = tree
    text, err = export(env, sid)
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>") and not page.errors and not page.stack
    assert ("meta", "content", CSP) in page.attrs
    # Nothing to fetch: no URL in any attribute or text, no src, links only within the page.
    assert "//" not in text and "url(" not in text and "@import" not in text
    assert not [a for a in page.attrs if a[1] == "src"]
    assert all(v.startswith("#") for tag, k, v in page.attrs if k == "href")
    assert page.tags.count("script") == 1
    # Every message has its anchor, every branch too; main is the checked-out one.
    doc = nodes(env, sid)
    assert {f"m-{n['id']}" for n in doc["nodes"]} <= set(page.ids)
    assert {"b-main", "b-alt"} <= set(page.ids)
    assert page.text["b-main"].startswith("main (checked out)10 messages, ")
    # Tokens per message, per branch and in all.
    with_tokens = [n for n in doc["nodes"] if n["tokens"]]
    assert with_tokens and all(f"{n['tokens']} token" in page.text[f"m-{n['id']}"]
                               for n in with_tokens)
    total = sum(n["tokens"] for n in with_tokens)
    assert f"13 messages, 2 branches, {total} tokens in all" in "".join(page.data)
    assert SECRET not in text and "[REDACTED:openai-key]" in text
    assert "Redacted 4 secret(s): 4 openai-key" in err
    raw, err = export(env, sid, "--no-redact")
    assert SECRET in raw and err == ""


def test_specialists_get_a_stable_colour_each():
    assert hue("apollo") == hue("apollo") != hue("athena")
    assert len({hue(name) for name in ("apollo", "athena", "prometheus", "hermes")}) == 4


HOSTILE_Q = "look <script>alert(1)</script> and </script> & \u2028 done"
HOSTILE_REPLY = ('</script><script>alert(2)</script><img src=x onerror=alert(3)>'
                 '<a href="https://evil.example/">x</a> \x1b]52;c;QUJD\x07')


def test_model_text_stays_text(env, server, tmp_path):
    server.reply = HOSTILE_REPLY
    sid = ok(env, "apollo", "--session", "--get-id", input=HOSTILE_Q).stdout.decode().strip()
    server.reply = "a second opinion"
    ok(env, "athena", "--session", sid, "--shared", input="and you?")
    text, _ = export(env, sid)
    page = Page(text)
    assert not page.errors and page.tags.count("script") == 1
    assert "img" not in page.tags
    assert all(v.startswith("#") for tag, k, v in page.attrs if k == "href")
    assert not [a for a in page.attrs if a[1].startswith("on") or a[1] == "src"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    assert "\x1b" not in text
    doc = nodes(env, sid)
    question, reply, asked, answer = (f"m-{n['id']}" for n in doc["nodes"])
    # Each specialist in its own colour, the one its name always gets.
    apollo, athena = ({c for c in page.classes(i) if c.startswith("ai")} for i in (reply, answer))
    assert apollo == page.classes(question) & apollo and athena == page.classes(asked) & athena
    assert apollo != athena and len(apollo) == len(athena) == 1
    for name, (cls,) in (("apollo", apollo), ("athena", athena)):
        assert f".{cls}{{--c:hsl({hue(name)},60%,40%)" in text
    assert HOSTILE_Q in page.text[question]
    assert '</script><script>alert(2)</script><img src=x' in page.text[reply]
    # In a browser: still one script, the text shown as written.
    after = dom(tmp_path, write(tmp_path, text), question)
    assert after.tags.count("script") == 1 and "img" not in after.tags
    assert "selected" in after.classes(question)
    assert "alert(2)</script><img" in after.text[reply]


def pixels(png: bytes) -> set[bytes]:
    """The distinct pixel values of an 8-bit RGB or RGBA PNG (stdlib only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", None
    while at < len(png):
        size, kind = struct.unpack(">I4s", png[at:at + 8])
        body = png[at + 8:at + 8 + size]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + size
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    previous = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))
        previous = line
    return seen


def test_a_browser_draws_the_page(tree, tmp_path):
    env, sid = tree
    page = write(tmp_path, export(env, sid)[0])
    chromium(tmp_path, "--screenshot=out.png", "--window-size=1000,800", page.as_uri())
    # A blank or unstyled page has a handful of values; text, colours and borders many.
    assert len(pixels((tmp_path / "out.png").read_bytes())) > 40


def test_deep_links_select_a_message_or_a_branch(tree, tmp_path):
    env, sid = tree
    page = write(tmp_path, export(env, sid)[0])
    doc = nodes(env, sid)
    parent = {n["id"]: n["parent"] for n in doc["nodes"]}

    def path(head):
        out = []
        while head:
            out.append(f"m-{head}")
            head = parent[head]
        return set(out)

    every = {f"m-{n['id']}" for n in doc["nodes"]}
    main, alt = path(doc["refs"]["main"]), path(doc["refs"]["alt"])

    def visible(after):
        return {i for i in every if "hidden" not in after.classes(i)}

    start = dom(tmp_path, page, "")
    assert visible(start) == main and "Branch main (checked out)" in start.text["title"]

    alt_reply = f"m-{doc['refs']['alt']}"
    after = dom(tmp_path, page, alt_reply)
    assert "selected" in after.classes(alt_reply) and visible(after) == alt
    assert [i for i in every if "selected" in after.classes(i)] == [alt_reply]
    assert "Branch alt" in after.text["title"]

    # The reply replaced by --regenerate is on no branch: its own path is shown.
    old = next(n for n in doc["nodes"] if n["number"] == 10 and n["id"] != doc["refs"]["main"])
    after = dom(tmp_path, page, f"m-{old['id']}")
    assert "selected" in after.classes(f"m-{old['id']}")
    assert visible(after) == path(old["id"]) and "Path to message 10" in after.text["title"]

    after = dom(tmp_path, page, "b-alt")
    assert "selected" in after.classes("b-alt") and "selected" not in after.classes("b-main")
    assert visible(after) == alt and "Branch alt: 4 messages" in after.text["title"]


def test_a_search_link_filters_and_highlights(tree, tmp_path):
    env, sid = tree
    page = write(tmp_path, export(env, sid)[0])
    doc = nodes(env, sid)
    after = dom(tmp_path, page, "q=Other%20WAY")
    shown = {i for i in after.ids if i.startswith("m-") and "hidden" not in after.classes(i)}
    assert shown == {f"m-{n['id']}" for n in doc["nodes"] if "other way" in n["content"]}
    assert len(shown) == 2 and after.tags.count("mark") == 2
    assert "2 messages match" in after.text["hits"]


def test_script_data_cannot_end_the_script():
    text = script_json({"</script><!--": "a & b \u2028\u2029 >"})
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == {"</script><!--": "a & b \u2028\u2029 >"}
