"""An automatic title never replaces a person's, whatever order the two records reach the log
in: the rule is part of folding meta records, in both stores' summaries and in a whole read."""

from __future__ import annotations

import pytest
from redis_support import redis_url  # noqa: F401 - the fixture

from aish.header import fold_meta
from aish.messages import Message
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore
from aish.titles import title_record

HEADER = {"id": "t1", "owner": "apollo", "created": 1.0, "updated": 1.0,
          "participants": ["apollo"]}
PERSON = title_record("Chosen by a person", "user")
MODEL = title_record("Suggested by the model", "auto")



@pytest.mark.parametrize("kind", ["file", "redis"])
@pytest.mark.parametrize(("order", "expected"), [
    ((PERSON, MODEL), ("Chosen by a person", "user")),  # the race the rule exists for
    ((MODEL, PERSON), ("Chosen by a person", "user")),  # a person's replaces an automatic one
])
def test_a_persons_title_survives_an_automatic_one(tmp_path, redis_url, kind,  # noqa: F811
                                                   order, expected):
    store = FileStore(tmp_path / "sessions") if kind == "file" else RedisStore(
        redis_url, timeout_minutes=60)
    store.create(dict(HEADER), [Message("user", "q", "apollo", 2.0)])
    for record in order:
        summary = store.append("t1", [dict(record)])
    header = summary.header
    assert (header.title, header.title_by) == expected
    # Read again (cached summary) and whole (the log folded from the start): the same.
    assert (store.summary("t1").header.title, store.summary("t1").header.title_by) == expected
    meta = store.load("t1").meta
    assert (meta["title"], meta["title_by"]) == expected
    if kind == "file":  # the cache rebuilt from the log agrees too
        for idx in (tmp_path / "sessions").glob(".*.idx"):
            idx.unlink()
        assert store.summary("t1").header.title == expected[0]


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_both_records_in_one_write_fold_the_same_way(tmp_path, redis_url, kind):  # noqa: F811
    store = FileStore(tmp_path / "sessions") if kind == "file" else RedisStore(
        redis_url, timeout_minutes=60)
    store.create(dict(HEADER))
    summary = store.append("t1", [dict(PERSON), dict(MODEL)])
    assert summary.header.title == "Chosen by a person"
    assert store.summary("t1").header.title_by == "user"


def test_an_automatic_title_applies_once_a_person_cleared_theirs():
    meta: dict = {}
    fold_meta(meta, PERSON)
    fold_meta(meta, title_record("", "user"))  # cleared
    fold_meta(meta, MODEL)
    assert (meta["title"], meta["title_by"]) == ("Suggested by the model", "auto")
    # Other keys of an automatic title's record still apply.
    fold_meta(meta, PERSON)
    fold_meta(meta, {**MODEL, "state": "ended"})
    assert meta["title"] == "Chosen by a person" and meta["state"] == "ended"


def test_the_session_reports_a_lost_race(tmp_path):
    from aish.config import load
    from aish.sessions import Sessions

    config = load({"HOME": str(tmp_path), "AISH_SESSION_DIR": str(tmp_path / "s")})
    sessions = Sessions(FileStore(tmp_path / "s"), config)
    session = sessions.create("apollo", "race")
    session.add(Message("user", "q", "apollo", 2.0))
    session.save()
    # The person's title lands after the automatic titler read the summary, before it wrote.
    stale = session.summary
    sessions.set_title("race", "Mine")
    session.sessions.store.summary = lambda _sid: stale  # type: ignore[method-assign]
    assert session.set_auto_title("Model's") is False
    assert FileStore(tmp_path / "s").summary("race").header.title == "Mine"
