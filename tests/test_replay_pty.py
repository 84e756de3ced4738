"""`aish --replay-session` on a terminal: the keys steer the playback, and the terminal is left
as it was found."""

from __future__ import annotations

from replay_support import GAP, SECRET, slow_session
from shell_support import Term


def test_keys_pause_step_jump_and_quit_and_the_terminal_is_restored(aish, home, term_env,
                                                                     terms, tmp_path):
    sid = slow_session(aish, home)
    before, after = tmp_path / "before", tmp_path / "after"
    # The idle limit above the recorded gap keeps the pieces GAP seconds apart.
    script = (f"stty -a > {before}; aish --replay-session {sid} --idle-limit {GAP + 2}; "
              f"echo rc=$?; stty -a > {after}; echo finished")
    term = Term(term_env, "-c", script, program="/bin/sh")
    terms.append(term)
    term.expect(r"space pause/resume")
    term.expect(r"apollo \(session\)> q1")
    term.expect(r"apollo> p01")
    term.send(" ")  # pause: long before the next piece is due
    term.send(".")  # one step while paused: exactly one more piece
    stepped = term.expect(r"p0[23]").group()
    following = f"p{int(stepped[1:]) + 1:02d}"
    term.settle(GAP + 1.5)  # playing, the next piece would have come by now
    assert following not in term.text, term.tail()
    term.send(" ")  # resume
    term.expect(following)
    term.send(" ")  # pause again, then jump to the next message: the rest of the reply shows
    term.send("n")
    term.expect(r"p10")
    term.expect(r"apollo \(session\)> q2 my key is \[REDACTED:openai-key\]")
    assert "second answer" not in term.text  # still paused
    term.send("p")  # back to the reply before it: the screen is redrawn from the start
    term.expect(r"apollo \(session\)> q1")
    term.expect(r"apollo> p01")
    assert "p02" not in term.text[term.text.rindex("apollo> p01"):]  # paused there
    term.send("q")
    term.expect(r"rc=0")
    term.expect(r"finished")
    assert term.wait() == 0
    assert before.read_text() == after.read_text()  # echo and line mode are back
    assert "-echo" not in after.read_text().split() and "icanon" in after.read_text().split()
    assert SECRET not in term.text


def test_ctrl_c_stops_the_playback_and_restores_the_terminal(aish, home, term_env, terms,
                                                              tmp_path):
    sid = slow_session(aish, home)
    before, after = tmp_path / "before", tmp_path / "after"
    # The shell keeps going after Ctrl-C (a trap, reset to the default in aish).
    script = (f"trap 'echo' INT; stty -a > {before}; aish --replay-session {sid}; echo rc=$?; "
              f"stty -a > {after}; echo finished")
    term = Term(term_env, "-c", script, program="/bin/sh")
    terms.append(term)
    term.expect(r"apollo> p01")
    term.send("\x03")
    term.expect(r"rc=130")
    term.expect(r"finished")
    assert before.read_text() == after.read_text()
