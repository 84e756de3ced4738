"""A compaction's summary stays out of the conversation's shape: it is never a side of a fork
or something to continue from in the shell, never numbered or counted as a message, never
merged into another session, never kept once what it covers is pruned, and it survives a
save and restore. Driven through session mode and the management functions on a real store,
with the scripted provider writing the summaries."""

# The session tests' `ctx` fixture is imported by name, which ruff reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json

from fakes import Scripted as Summariser
from test_shell_session import Scripted, ctx, run  # noqa: F401 - ctx is a fixture

from aish.compaction import INDEX_KEY, NOTE, compact, session_on
from aish.forks import Tree
from aish.history import build
from aish.reports import format_info, session_info


def compacted(ctx, sid: str | None = None):
    """A session of three exchanges in a window of one, compacted: its summary stands for
    messages 1-4 and hangs off message 4, beside message 5."""
    session = ctx.sessions.create("apollo", sid, context_window=1)
    session, _, _, _ = run(ctx, "q1\nq2\nq3\n", session=session)
    done = compact(session_on(ctx.sessions, session.id, "main"), ctx.specialist("apollo"),
                   Summariser("SUMMARY of q1 and q2"))
    assert done is not None and done.note.covers == 4
    return session, done.note


def conversation(ctx, sid: str) -> list[str]:
    loaded = ctx.store.load(sid)
    return [m.content for m in loaded.path(loaded.tree.head("main"))]


def test_the_shell_sees_no_fork_at_a_summary_and_flip_leaves_main_alone(ctx):
    session, note = compacted(ctx)
    _, _, err, _ = run(ctx, "flip\nflip next\n", session=session)
    assert "No fork on branch main" in err
    assert "Message 5" not in err
    assert conversation(ctx, session.id) == ["q1", "reply 1", "q2", "reply 2", "q3", "reply 3"]

    loaded = ctx.store.load(session.id)
    tree = Tree.of(loaded)
    assert tree.forks(loaded.tree.head("main").id) == []
    assert tree.newest_under(loaded.messages[0]).content == "reply 3"  # never the summary

    # A real fork beside the summary is still one, with the summary no side of it.
    _, _, err, _ = run(ctx, "regenerate\nflip\n", session=session)
    assert "Message 6 of branch main: 2/2" in err


def test_history_numbers_and_info_counts_leave_the_summary_out(ctx):
    session, note = compacted(ctx)
    history = build(ctx.store.load(session.id), session.id, "main")
    assert note.id not in history.nodes
    numbers = sorted(node.number for node in history.nodes.values())
    assert numbers == [1, 2, 3, 4, 5, 6]  # no number twice
    assert all(n.message.note != NOTE for n in history.nodes.values())
    assert history.refs["main"] == conversation_head(ctx, session.id)

    info = session_info(ctx.sessions, session.id)
    assert info["messages"] == 6 and info["replies_by_ai"] == {"apollo-ai": 3}
    assert sum(info["people"]["messages_by_person"].values()) == 6
    text = format_info(info, ctx.now())
    assert "Messages: 6" in text and "Summary of messages 1\u20134 included" in text


def conversation_head(ctx, sid: str) -> str:
    return ctx.store.load(sid).tree.head("main").id


def test_merging_sessions_leaves_their_summaries_out(ctx):
    from aish.management.merge import merge

    first, _ = compacted(ctx, "first")
    second = ctx.sessions.create("apollo", "second")
    run(ctx, "other\n", session=second)
    done = merge(ctx.sessions, ["first", "second"], "both")
    assert done.messages == 8
    loaded = ctx.store.load("both")
    assert [m for m in loaded.messages if m.note == NOTE] == []
    assert all(m.summary is None for m in loaded.messages)
    assert [m.content for m in loaded.path(loaded.tree.head("main"))][:6] == [
        "q1", "reply 1", "q2", "reply 2", "q3", "reply 3"]


def test_prune_drops_the_summary_of_what_it_pruned(ctx):
    from aish.management.hygiene import prune

    session, note = compacted(ctx)
    done = prune(ctx.sessions, session.id, 1)
    assert (done.kept_pairs, done.total_pairs, done.kept_messages) == (1, 3, 2)
    loaded = ctx.store.load(session.id)
    assert [m.content for m in loaded.messages] == ["q3", "reply 3"]
    assert "SUMMARY of q1" not in "".join(ctx.store.raw_lines(session.id))
    assert not loaded.meta.get(INDEX_KEY)
    assert session_info(ctx.sessions, session.id)["summary"] is None


def test_save_and_restore_keep_the_compaction(ctx):
    from aish.management.restore import restore
    from aish.management.transfer import save_session

    session, note = compacted(ctx, "saved")
    run(ctx, "q4\n", session=session)  # a reply that names the summary its context began with
    doc = save_session(ctx.sessions, "saved")
    text = json.dumps(doc)
    assert '"summary_at"' not in text and '"at"' not in text  # positions are the old log's
    restore(ctx.sessions, text.encode(), target="copy")

    info = session_info(ctx.sessions, "copy")
    assert info["summary"] is not None and info["summary"]["covers"] == 4
    assert info["messages"] == 8
    loaded = ctx.store.load("copy")
    [copied] = [m for m in loaded.messages if m.note == NOTE]
    assert copied.id == note.id and copied.covers == 4
    entry = loaded.meta[INDEX_KEY]["main"]
    assert entry["id"] == note.id and entry["at"] == copied.pos  # this log's position

    # The restored session's next context begins with the summary.
    provider = Scripted()
    run(ctx, "q5\n", session=ctx.sessions.open("apollo", "copy"), provider=provider)
    chat = provider.chats[-1]
    assert any(m.role == "system" and "SUMMARY of q1 and q2" in m.content for m in chat)
    assert "q1" not in [m.content for m in chat]


def test_sync_carries_the_compaction_to_another_device(laptop, desktop, shared):
    from sync_support import ok, say, sessions_of, sync

    from aish.reports import context_report, format_context
    from aish.specialists import roster

    apollo = roster({})["apollo"]
    sessions_of(laptop).create("apollo", "s1", context_window=1)
    say(laptop, "s1", "one", "two", "three")
    done = compact(session_on(sessions_of(laptop), "s1", "main"), apollo,
                   Summariser("SUMMARY of one and two"))
    assert done is not None
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))

    there = sessions_of(desktop)
    info = session_info(there, "s1")
    assert info["summary"] is not None and info["summary"]["covers"] == 4
    assert info["messages"] == 6
    report = format_context(context_report(session_on(there, "s1", "main"), apollo,
                                           done.note.time + 60))
    assert "Summary of messages 1\u20134 included" in report
