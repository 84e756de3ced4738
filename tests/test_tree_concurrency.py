"""Many writers on one branch of one session: every exchange is stored whole, every message's
parent exists, and a writer that loses a race is told where its exchange went.

- 16 real ``apollo`` processes, each with AISH_STRESS_ROUNDS exchanges (3 by default; a nightly
  run asks for 50: 800 exchanges), against the scripted server;
- 16 processes on the session core in process (multiprocessing), AISH_STRESS_ROUNDS exchanges
  each (10 by default; 50 nightly: 800 exchanges, 1,600 messages): the same load without the
  start-up cost of a program;
- two processes answered at the same head (the server holds both replies until both requests
  arrived): one turn continues main, the other is kept on a new branch, and its writer says so.

Each on the file store and on a real redis-server.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections import Counter

import tree_support
from conftest import run
from manage_support import race_programs
from tree_support import Echo

from aish import config as config_module
from aish.messages import ASSISTANT, USER
from aish.sessions import Sessions
from aish.specialists import roster
from aish.store import open_store
from aish.store.refs import MAIN

store_env = tree_support.store_env  # the fixture: file store, then Redis

ROUNDS = int(os.environ.get("AISH_STRESS_ROUNDS", "3"))
CORE_ROUNDS = int(os.environ.get("AISH_STRESS_ROUNDS", "10"))
WRITERS = 16
# What happens today to an exchange that loses its race (Session._append): it is stored on a
# new branch NAME-2, and then, the loop not returning, again on NAME-2-2 and so on 50 times
# (the same message ids each time) until "too busy to write to" (exit 5); and two losers that
# pick the same new name at once fail with RefMoved instead of taking the next name.




def ok(env, *argv, input=None):
    done = run(env, *argv, input=input, AISH_MAX_SESSIONS="1000")
    assert done.returncode == 0, (argv, done.returncode, done.stderr.decode())
    return done


def check_tree(env, sid: str, writers: int, rounds: int, reply_of) -> None:
    """Every exchange of every writer stored once, each reply after its question, every parent
    and every ref pointing at a stored message, and validate finding nothing else wrong.

    A message's time is when it was made; one that lost races for a while is stored after
    newer ones, which validate reports as out of order (a note, not damage)."""
    loaded = open_store(config_module.load(env)).load(sid)
    assert [p for p in loaded.problems if p.kind != "out of order"] == []
    by_id = loaded.by_id()
    questions = {m.content: m for m in loaded.messages if m.role == USER}
    expected = {f"msg-{n}-{r}" for n in range(writers) for r in range(rounds)}
    assert set(questions) - {"start"} == expected
    assert Counter(m.content for m in loaded.messages if m.role == USER)["start"] == 1
    assert len(loaded.messages) == 2 * (writers * rounds + 1)
    for message in loaded.messages:
        assert message.parent == "" or message.parent in by_id, message
    for reply in (m for m in loaded.messages if m.role == ASSISTANT):
        question = by_id[reply.parent]
        assert question.role == USER and reply.content == reply_of(question.content)
    for name, head in loaded.tree.refs.items():
        assert head.id == "" or head.id in by_id, name
    done = run(env, "aish", "--validate-session", sid, "--json")
    assert b"Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert done.returncode == (0 if report["ok"] else 1)
    assert {p["kind"] for p in report["problems"]} <= {"out of order"}, report


def test_sixteen_programs_on_one_branch_store_every_exchange(store_env):
    sid = ok(store_env, "apollo", "--session", "--get-id", input="start").stdout.decode().strip()
    assert race_programs(store_env, ["apollo", "--session", sid], WRITERS, ROUNDS) == []
    check_tree(store_env, sid, WRITERS, ROUNDS, lambda q: f"ok: {q}")


# -- the same load on the session core, in process ----------------------------------------------




def core_writer(env: dict, sid: str, n: int, rounds: int, gate, told) -> None:
    """One process: ``rounds`` exchanges on main of ``sid``; puts what it was told in ``told``."""
    config = config_module.load(env)
    sessions = Sessions(open_store(config), config)
    apollo = roster({})["apollo"]
    notices = []
    gate.wait()
    try:
        for r in range(rounds):
            session = sessions.open("apollo", sid)
            session.exchange(apollo, f"msg-{n}-{r}", Echo())
            session.save()
            notices += session.notices
    finally:
        told.put((n, notices))


def test_sixteen_processes_on_the_session_core_store_every_exchange(store_env):
    config = config_module.load(store_env)
    sessions = Sessions(open_store(config), config)
    session = sessions.create("apollo")
    session.exchange(roster({})["apollo"], "start", Echo())
    session.save()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a program gets
    gate, queue = context.Barrier(WRITERS), context.Queue()
    workers = [context.Process(target=core_writer,
                               args=(store_env, session.id, n, CORE_ROUNDS, gate, queue))
               for n in range(WRITERS)]
    for worker in workers:
        worker.start()
    told = dict(queue.get(timeout=1800) for _ in workers)
    for worker in workers:
        worker.join(timeout=600)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    told = [told[n] for n in range(WRITERS)]
    check_tree(store_env, session.id, WRITERS, CORE_ROUNDS, lambda q: f"re: {q}")
    loaded = open_store(config).load(session.id)
    asides = set(loaded.tree.refs) - {MAIN}
    # Every exchange that lost its race was kept on a branch of its own, and its writer told.
    assert len([line for lines in told for line in lines]) == len(asides)
    for name in asides:
        assert any(f"kept on branch {name}" in line for lines in told for line in lines)


# -- two answers at the same head -------------------------------------------------------------


def test_two_answers_at_the_same_head_keep_both_and_tell_the_loser(store_env, server):
    # Without turn-taking, so that both requests are in flight at once and the race is real.
    store_env = {**store_env, "AISH_FLOOR_TTL": "0"}
    sid = ok(store_env, "apollo", "--session", "--get-id", input="start").stdout.decode().strip()
    both = threading.Barrier(2)

    def held(body: dict) -> str:
        both.wait(timeout=300)  # neither reply goes out before both requests arrived
        return f"answer to {body['messages'][-1]['content']}"

    server.reply = held
    results: dict[str, object] = {}

    def ask(text: str) -> None:
        results[text] = run(store_env, "apollo", "--session", sid, input=text)

    threads = [threading.Thread(target=ask, args=(t,)) for t in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for done in results.values():
        assert done.returncode == 0, done.stderr.decode()
    told = [t for t, done in results.items() if b"kept on branch" in done.stderr]
    assert len(told) == 1, {t: d.stderr.decode() for t, d in results.items()}
    (loser,) = told
    (winner,) = set(results) - {loser}

    loaded = open_store(config_module.load(store_env)).load(sid)
    assert loaded.problems == []
    rows = json.loads(ok(store_env, "aish", "--list-branches", sid, "--json").stdout)
    names = {row["name"] for row in rows}
    assert names == {"main", "main-2"}
    assert b"main-2" in results[loser].stderr
    main_path = [m.content for m in loaded.path(loaded.tree.head("main"))]
    side_path = [m.content for m in loaded.path(loaded.tree.head("main-2"))]
    assert main_path[-1] == f"answer to {winner}"
    assert side_path[-1] == f"answer to {loser}" and loser in side_path
    assert f"answer to {loser}" not in main_path
    assert len(loaded.messages) == 6  # start + reply, two questions, two answers

