"""Session replay: replies record their timing, the player turns a path into timed frames and
plays them under a clock, `aish --replay-session` prints the transcript when piped, and
`--export-session --format cast` writes an asciicast that asciinema reads back."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import BIN
from hypothesis import given, settings
from hypothesis import strategies as st
from replay_support import PIECES, SECRET, ok, slow_session
from shell_support import session_records, strip_controls

from aish.messages import ASSISTANT, MAX_MARKS, USER, Message, Stopwatch, Timing
from aish.playback import END, LEFT, REPLY, TEXT, USER_LINE, Frame, Player, frames

# -- timing as recorded -----------------------------------------------------------------------

def test_a_real_exchange_records_timing_kept_through_save_and_restore(env, server, aish,
                                                                     sessions_dir):
    server.chunks = ["one ", "two ", "three"]
    server.delay = 0.2  # between pieces
    sid = ok(aish("apollo", "--session", "--get-id", input="count", **env)).strip()
    reply = [r for r in session_records(sessions_dir, sid) if r.get("role") == ASSISTANT][0]
    timing = reply["timing"]
    assert [n for _, n in timing["marks"]] == [4, 8, 13]
    times = [t for t, _ in timing["marks"]]
    assert timing["first"] == times[0] and times[-1] <= timing["end"]
    # The last piece left the server two delays after the request came in, and the clock
    # started before the request was sent.
    assert times[2] >= 0.39 and timing["end"] >= times[2]
    assert all(len(str(t).split(".")[-1]) <= 3 for t in times)  # rounded to ms
    user = [r for r in session_records(sessions_dir, sid) if r.get("role") == USER][0]
    assert "timing" not in user

    saved = ok(aish("aish", "--save-session", sid, **env))
    assert json.loads(saved)["messages"][1]["timing"] == timing
    ok(aish("aish", "--restore-session", "--as", "sess_copy01", input=saved, **env))
    copied = [r for r in session_records(sessions_dir, "sess_copy01") if r.get("role") == ASSISTANT]
    assert copied[0]["timing"] == timing


def test_stopwatch_keeps_a_bounded_number_of_marks_spread_over_the_reply():
    now = [0.0]
    watch = Stopwatch(lambda: now[0])
    for i in range(1, 10_001):
        now[0] = i / 100
        watch.text(3)
    timing = watch.timing()
    assert timing.first == 0.01 and timing.end == 100.0
    assert MAX_MARKS // 2 <= len(timing.marks) <= MAX_MARKS
    assert [n for _, n in timing.marks] == sorted({n for _, n in timing.marks})
    assert timing.marks[-1][0] > 50  # the samples reach the second half, not just the start
    assert all(n == round(t * 100) * 3 for t, n in timing.marks)


@pytest.mark.parametrize("bad", ["soon", {"first": "x", "end": 1}, {"first": 1},
                                 {"first": 1, "end": 2, "marks": [[1, "a"]]},
                                 {"first": 1, "end": 2, "marks": [[1, 2, 3]]},
                                 {"first": -1, "end": 2}, {"first": 1, "end": 2, "marks": 5},
                                 {"first": float("nan"), "end": 1}])
def test_a_malformed_timing_is_dropped_and_the_message_kept(bad):
    record = {"role": "assistant", "content": "hi", "ai": "apollo", "time": 1.0, "timing": bad}
    message = Message.from_record(record)
    assert message.content == "hi" and message.timing is None
    assert "timing" not in message.to_record()


def test_timing_round_trips_through_the_record():
    timing = Timing(0.5, 2.25, ((0.5, 3), (1.0, 9)))
    message = Message(ASSISTANT, "hello, you", "apollo", 1.0, timing=timing)
    record = message.to_record()
    assert record["timing"] == {"first": 0.5, "end": 2.25, "marks": [[0.5, 3], [1.0, 9]]}
    assert Message.from_record(json.loads(json.dumps(record))).timing == timing


# -- the player under a fake clock ------------------------------------------------------------

def conversation() -> list[Message]:
    return [
        Message(USER, "hi", "apollo", 100.0),
        Message(ASSISTANT, "abcdefghij", "apollo", 104.0,
                timing=Timing(1.0, 4.0, ((1.0, 4), (3.0, 8)))),
        Message(USER, "more", "apollo", 3704.0),  # an hour later
        Message(ASSISTANT, "x" * 25, "athena", 3705.0),  # recorded before timing existed
    ]


def test_frames_follow_the_recorded_timing_with_idle_limit_and_typing_fallback():
    assert frames(conversation()) == [
        Frame(0.0, USER_LINE, 0, "apollo (session)> hi"),
        Frame(1.0, REPLY, 1, "apollo> "),
        Frame(1.0, TEXT, 1, "abcd"),
        Frame(3.0, TEXT, 1, "efgh"),  # a pause of 2 s: at the idle limit
        Frame(4.0, TEXT, 1, "ij"),
        Frame(4.0, END, 1),
        Frame(6.0, USER_LINE, 2, "apollo (session)> more"),  # the hour, capped to 2 s
        Frame(6.0, REPLY, 3, "athena> "),
        Frame(6.0, TEXT, 3, "x" * 10),
        Frame(6.05, TEXT, 3, "x" * 10),  # 200 characters a second
        Frame(6.1, TEXT, 3, "x" * 5),
        Frame(6.125, END, 3),
    ]


def test_speed_divides_and_idle_limit_caps_every_pause():
    fast = frames(conversation(), speed=2.0, idle_limit=1.5)
    assert [f.at for f in fast] == [0.0, 0.5, 0.5, 1.25, 1.75, 1.75, 2.5, 2.5, 2.5, 2.525,
                                    2.55, 2.5625]
    uncapped = frames(conversation(), idle_limit=None)
    assert uncapped[6].at == 3604.0


def test_redaction_applies_before_the_text_is_cut_in_pieces():
    messages = [Message(ASSISTANT, f"key {SECRET} end", "apollo", 1.0,
                        timing=Timing(0.1, 1.0, tuple((i / 10, i) for i in range(1, 10))))]
    shown = "".join(f.text for f in frames(messages, text=lambda s: s.replace(SECRET, "[R]"))
                    if f.kind == TEXT)
    assert shown == "key [R] end"


class FakeClock:
    """A clock that moves only when the player waits, and keys that arrive at given times."""

    def __init__(self, keys: list[tuple[float, str]]):
        self.t = 0.0
        self.keys = list(keys)

    def __call__(self) -> float:
        return self.t

    def wait(self, timeout: float | None) -> str | None:
        if self.keys and (timeout is None or self.keys[0][0] <= self.t + timeout):
            at, key = self.keys.pop(0)
            self.t = max(self.t, at)
            return key
        assert timeout is not None, "paused with no key left to press"
        self.t += timeout
        return None


def play(keys: list[tuple[float, str]], messages=None) -> tuple[list[tuple[float, str]], int]:
    clock = FakeClock(keys)
    shown: list[tuple[float, str]] = []
    resets = []

    def show(frame: Frame) -> None:
        shown.append((round(clock.t, 6), f"{frame.kind}:{frame.index}:{frame.text}"))

    Player(frames(messages or conversation()), show, lambda: resets.append(clock.t),
           clock=clock, keys=clock.wait).run()
    return shown, len(resets)


def test_the_player_shows_each_frame_when_it_is_due():
    clock = FakeClock([])
    seen = []
    Player(frames(conversation()), lambda f: seen.append((clock.t, f.kind)), clock=clock,
           sleep=lambda s: setattr(clock, "t", clock.t + s)).run()
    assert seen == [(f.at, f.kind) for f in frames(conversation())]


def test_pause_resume_step_and_quit():
    shown, _ = play([(1.5, " "), (10.0, "."), (20.0, " "), (22.0, "q")])
    assert shown == [
        (0.0, "user:0:apollo (session)> hi"), (1.0, "reply:1:apollo> "), (1.0, "text:1:abcd"),
        (10.0, "text:1:efgh"),  # paused at 1.5; `.` shows the next frame at once
        (21.0, "text:1:ij"), (21.0, "end:1:"),  # resumed at 20, 1 s after efgh as recorded
    ]


def test_next_and_previous_message_and_seeking():
    shown, resets = play([(1.5, "n"), (1.5, "p")])
    first = [
        (0.0, "user:0:apollo (session)> hi"), (1.0, "reply:1:apollo> "),
        (1.0, "text:1:abcd"), (1.5, "text:1:efgh"), (1.5, "text:1:ij"), (1.5, "end:1:"),
        (1.5, "user:2:apollo (session)> more"),  # `n`: the rest of the reply, the next turn
        (1.5, "reply:3:athena> "), (1.5, "text:3:" + "x" * 10),
    ]
    assert shown[:9] == first
    # `p` in the last reply goes back to the message before it: the screen is cleared, what
    # came before is shown again at once, and play goes on from that message.
    assert resets == 1
    assert shown[9:16] == [(1.5, text) for _, text in first[:7]]
    assert shown[16:] == [(1.5, "reply:3:athena> "), (1.5, "text:3:" + "x" * 10),
                          (1.55, "text:3:" + "x" * 10), (1.6, "text:3:xxxxx"), (1.625, "end:3:")]

    shown, resets = play([(3.5, LEFT), (3.5, "q")])
    # back 5 s from 3.5 is the start: cleared, then played again from there
    assert resets == 1 and shown[-1] == (3.5, "user:0:apollo (session)> hi")


# -- the command ------------------------------------------------------------------------------

def test_piped_replay_prints_the_transcript_at_once_redacted(aish, home, sessions_dir):
    sid = slow_session(aish, home)
    # The recorded pauses add up to far more than the timeout: piped, nothing waits.
    result = aish("aish", "--replay-session", sid, timeout=20)
    out = ok(result)
    assert out == ("apollo (session)> q1\napollo> " + "".join(PIECES)
                   + "apollo (session)> q2 my key is [REDACTED:openai-key]\n"
                   + "apollo> second answer\n")
    assert SECRET not in out and "\x1b" not in out
    assert "Redacted 1 secret(s): 1 openai-key" in result.stderr.decode()
    assert SECRET in ok(aish("aish", "--replay-session", sid, "--no-redact"))
    part = ok(aish("aish", "--replay-session", sid, "--from", "3", "--to", "3"))
    assert part.splitlines() == ["apollo (session)> q2 my key is [REDACTED:openai-key]"]
    beyond = aish("aish", "--replay-session", sid, "--from", "9")
    assert ok(beyond) == "" and "nothing to replay" in beyond.stderr.decode()


@pytest.mark.parametrize("args, message", [
    (["--speed", "0"], "above 0"), (["--idle-limit", "soon"], "expected a number"),
    (["--from", "3", "--to", "2"], "comes before"), (["--branch", "nope"], "nope"),
    (["--from", "x"], "message number"), (["--json"], "--as or --model"),
    (["--provider", "local"], "--as or --model"), (["--as", "athena", "--speed", "2"], "--speed"),
])
def test_bad_replay_arguments_are_one_line_usage_errors(aish, home, sessions_dir, args,
                                                        message):
    sid = slow_session(aish, home)
    result = aish("aish", "--replay-session", sid, *args)
    err = result.stderr.decode().strip()
    assert result.returncode in (2, 3), err
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


# -- the recording ----------------------------------------------------------------------------

def test_cast_export_is_an_asciicast_asciinema_plays_back(aish, home, sessions_dir, tmp_path):
    sid = slow_session(aish, home)
    result = aish("aish", "--export-session", sid, "--format", "cast")
    text = ok(result)
    assert SECRET not in text and "Redacted" in result.stderr.decode()
    header, *events = [json.loads(line) for line in text.splitlines()]
    assert header["version"] == 2 and header["width"] == 100 and header["height"] > 0
    assert set(header["env"]) == {"TERM", "SHELL"} and sid in header["title"]
    assert [e[2] for e in events if e[1] == "m"] == ["1. q1", "3. q2 my key is "
                                                     "[REDACTED:openai-key]"]
    times = [e[0] for e in events]
    assert times == sorted(times) and times[-1] <= 30  # pauses capped at 2 s
    outputs = [e for e in events if e[1] == "o"]
    assert len(outputs) > 10  # the reply streams in pieces, not at once

    path = tmp_path / "session.cast"
    path.write_text(text)
    played = subprocess.run([str(BIN / "asciinema"), "cat", str(path)], capture_output=True,
                            timeout=120, env={**os.environ, "HOME": home["HOME"]})
    assert played.returncode == 0, played.stderr.decode()
    screen = strip_controls(played.stdout.decode())
    transcript = ok(aish("aish", "--replay-session", sid))
    assert screen.strip() == transcript.strip()
    assert re.search(r"apollo> p01", screen) and SECRET not in screen


EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 300)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=80), st.lists(st.tuples(st.floats(0, 100), st.integers(0, 120)),
                                      max_size=40),
       st.floats(0, 100), st.floats(0, 100), st.booleans(), st.floats(0.1, 10))
def test_any_recorded_timing_plays_the_whole_text_in_order(content, marks, first, end, timed,
                                                            speed):
    timing = Timing(first, end, tuple(marks)) if timed else None
    played = frames([Message(USER, "q", "apollo", 0.0),
                     Message(ASSISTANT, content, "apollo", 1.0, timing=timing)], speed=speed)
    assert "".join(f.text for f in played if f.kind == TEXT) == content
    assert [f.at for f in played] == sorted(f.at for f in played)
    assert played[-1].kind == END and played[-1].at <= 2 * len(played) / speed + 1e-6
    # And as stored: the record's timing reads back as it was (to the millisecond).
    if timing is not None:
        back = Message.from_record(json.loads(json.dumps(
            Message(ASSISTANT, content, "apollo", 1.0, timing=timing).to_record()))).timing
        assert back is not None and abs(back.end - end) < 1e-3 and len(back.marks) == len(marks)
