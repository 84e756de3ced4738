"""Templates (persona, settings, messages; never credentials) and `--auto-save N`, in process
with a scripted provider instead of a model."""

from __future__ import annotations

import pytest
from fakes import Scripted
from manage_support import conversation, sessions_for

from aish.errors import SessionNotFound, StorageError, UsageError
from aish.specialists import roster
from aish.templates import save_template, start_from_template


def test_a_template_keeps_persona_settings_and_messages(home):
    sessions = sessions_for(home)
    source = sessions.create("athena", "review", context_window=4,
                             messages=conversation("athena", 2, 1e9))
    save_template(sessions, "code-review", source.id, persona="You review code like a hawk.")
    started = start_from_template(sessions, "code-review", "athena")
    assert started.context_window == 4
    assert started.meta["origin"] == {"template": "code-review"}
    assert len(sessions.store.load(started.id).messages) == 4
    athena = roster({})["athena"]
    provider = Scripted()
    started.exchange(athena, "Review this code", provider)
    assert provider.chats[0][0].content.startswith("You review code like a hawk.")
    # another specialist starting from it keeps its own persona
    other = start_from_template(sessions, "code-review", "apollo")
    assert "persona" not in other.meta
    provider = Scripted()
    other.exchange(roster({})["apollo"], "hi", provider)
    assert provider.chats[0][0].content.startswith("You are Apollo")


def test_template_errors(home):
    sessions = sessions_for(home)
    with pytest.raises(SessionNotFound):
        start_from_template(sessions, "never-saved", "apollo")
    with pytest.raises(UsageError):
        save_template(sessions, "../escape", "whatever")
    templates = sessions.store.root / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "broken.json").write_text('["not", "a", "template"]')
    with pytest.raises(StorageError):
        start_from_template(sessions, "broken", "apollo")
    for time in ("1e999999", "NaN", "1" + "0" * 400):
        (templates / "huge.json").write_text('{"messages": [{"role": "user", "content": "x", '
                                             f'"ai": "apollo", "time": {time}}}]}}')
        with pytest.raises(StorageError):
            start_from_template(sessions, "huge", "apollo")


@pytest.mark.parametrize("every", [0, 1, 5])
def test_auto_save_every_n_messages(home, every):
    """`apollo --session --auto-save N`: never more than N messages wait unwritten, a user's
    message is durable before the provider is asked (unless saving is off), `save` writes all."""
    sessions = sessions_for(home)
    session = sessions.create("apollo")
    session.auto_save = every
    apollo = roster({})["apollo"]
    stored_while_asking = []

    class Watching(Scripted):
        def stream(self, chat, specialist):
            stored_while_asking.append(sessions.store.summary(session.id).messages)
            yield from super().stream(chat, specialist)

    for i in range(5):
        session.exchange(apollo, f"message {i}", Watching())
        stored = sessions.store.summary(session.id).messages
        assert stored + session.unsaved == 2 * (i + 1)
        if every:
            assert session.unsaved <= every
            assert stored_while_asking[-1] >= 2 * i + 1  # the question is on disk
        else:
            assert stored == 0
    session.save()
    assert sessions.store.summary(session.id).messages == 10
    assert session.unsaved == 0
