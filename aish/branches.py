"""Branches of a session: creating, listing, moving (undo, redo) and merging them.

Part of the session core, beside `aish.sessions`. Every change is a ref move appended to the
log by compare-and-set from where the branch was seen, so nothing is ever deleted and a move
that raced another fails whole instead of dropping a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aish.errors import SessionNotFound, StorageError, UsageError
from aish.ids import check_id
from aish.messages import USER, Message, relinked
from aish.sessions import Sessions
from aish.store.base import Summary, path_in
from aish.store.refs import MAIN, Head, RefMoved, pin_main


def check_branch(name: str) -> str:
    from aish.ids import check_branch_name

    return check_branch_name(name)


def number_of(sessions: Sessions, sid: str, at) -> int:
    """The number (from 1) of message ``at`` (a Message or a Head) on its path from the root:
    its path's length as the session's tally keeps it for every branch head (which ``at``,
    just moved to, is), else walked."""
    known = sessions.counted(sid).tally.path(at.id)
    if known is not None:
        return known.n
    return len(sessions.path(sid, Head(at.id, at.pos), 0))


def head_of(summary: Summary, branch: str) -> Head:
    head = summary.head(branch)
    if head is None:
        raise SessionNotFound(f"session {summary.id} has no branch {branch}",
                              hint=f"see aish --list-branches {summary.id}")
    return head


def message_at(path: list[Message], number: int, sid: str, branch: str,
               lowest: int = 0) -> Message | None:
    """Message ``number`` (from 1) of ``path``; 0 is the root, before the first message
    (where ``lowest`` allows it: a branch may start there, an edit may not)."""
    if not lowest <= number <= len(path):
        raise UsageError(f"branch {branch} of session {sid} has {len(path)} messages; "
                         f"{number} is not one of them", hint=f"use {lowest}-{len(path)}")
    return path[number - 1] if number else None


def move(sessions: Sessions, sid: str, branch: str, target: Message | None, op: str,
         expected: Head | None, create: bool = False) -> Summary:
    """Point ``branch`` at ``target`` (None: the root), if it still is at ``expected``."""
    return move_to(sessions, sid, branch, Head(target.id, target.pos) if target else Head(""),
                   op, expected, create)


def move_to(sessions: Sessions, sid: str, branch: str, target: Head, op: str,
            expected: Head | None, create: bool = False) -> Summary:
    record: dict = {"t": "ref", "name": branch, "to": target.id, "op": op,
                    "time": sessions.now()}
    if not create and expected is not None:
        record["from"] = expected.id
    if target.pos is not None:
        record["at"] = target.pos
    pin = pin_main(sessions.summary(sid).tree) if branch != MAIN else []
    try:
        summary = sessions.store.append(check_id(sid), pin + [record])
    except RefMoved as exc:
        if create:
            raise UsageError(f"session {sid} already has a branch {branch}",
                             hint=f"pick another name, or aish --checkout {sid} {branch}"
                             ) from None
        raise StorageError(f"branch {branch} of session {sid} moved meanwhile ({exc.name})",
                           hint="run the command again") from None
    sessions.audit.record(op, sid, None, branch=branch, to=record["to"])
    return summary


def create(sessions: Sessions, sid: str, name: str, at: int | None = None,
           source: str = MAIN) -> str:
    """A new branch ``name`` at message ``at`` of ``source`` (None: its head); returns the id
    of the message it starts from ("": the root)."""
    check_branch(name)
    summary = sessions.summary(sid)
    if summary.head(name) is not None:
        raise UsageError(f"session {sid} already has a branch {name}",
                         hint=f"pick another name, or aish --checkout {sid} {name}")
    head = head_of(summary, source)
    if at is None:  # at the head: no walk needed
        move_to(sessions, sid, name, head, "branch", None, create=True)
        return head.id
    path = sessions.store.path(sid, head, 0)
    target = message_at(path, at, sid, source)
    move(sessions, sid, name, target, "branch", None, create=True)
    return target.id if target else ""


def undo(sessions: Sessions, sid: str, branch: str, exchanges: int = 1) -> Message | None:
    """Move ``branch`` back ``exchanges`` exchanges (a user message and its replies); returns
    its new head (None: the root). Nothing is deleted: redo moves it forward again."""
    if exchanges < 1:
        raise UsageError("--undo needs a number of exchanges >= 1")
    summary = sessions.summary(sid)
    head = head_of(summary, branch)
    # One exchange more than is undone: the walk stops there, or at the root.
    path = sessions.store.path(sid, head, exchanges + 1)
    users = [i for i, m in enumerate(path) if m.role == USER]
    if len(users) < exchanges:
        count = len(users)
        raise UsageError(f"branch {branch} of session {sid} has "
                         f"{'no exchanges' if not count else f'only {count} exchange(s)'}"
                         " to undo")
    cut = users[-exchanges]
    target = path[cut - 1] if cut > 0 else None
    move(sessions, sid, branch, target, "undo", head)
    return target


def redo(sessions: Sessions, sid: str, branch: str) -> Head:
    summary = sessions.summary(sid)
    head = head_of(summary, branch)
    stack = summary.tree.redo.get(branch)
    if not stack:
        raise UsageError(f"nothing to redo on branch {branch} of session {sid}")
    target = stack[0]
    record = {"t": "ref", "name": branch, "from": head.id, "to": target.id, "op": "redo",
              "time": sessions.now(), **({"at": target.pos} if target.pos is not None else {})}
    try:
        sessions.store.append(sid, [record])
    except RefMoved:
        raise StorageError(f"branch {branch} of session {sid} moved meanwhile",
                           hint="run the command again") from None
    sessions.audit.record("redo", sid, None, branch=branch, to=target.id)
    return target


@dataclass
class BranchInfo:
    name: str
    head: str  # message id ("" when the branch starts at the root and has nothing yet)
    messages: int  # on its path from the root
    last_activity: float
    speakers: list[str]  # the specialists that answered on it
    redo: int  # exchanges an undo left that redo can bring back

    def to_json(self) -> dict:
        return {"name": self.name, "head": self.head, "messages": self.messages,
                "last_activity": self.last_activity, "speakers": self.speakers,
                "redo": self.redo}


def listing(counted) -> list[BranchInfo]:
    """Every branch of a session counted (`aish.tallies.Counted`, see `Sessions.counted`)."""
    tree = counted.tree
    out = []
    for name in tree.names():
        head = tree.head(name) or Head("")
        if name == MAIN and MAIN not in tree.refs and not counted.tally.last:
            head = Head("")  # nothing stored yet
        path = counted.path(head.id)
        out.append(BranchInfo(name, head.id, path.n, path.time, list(path.speakers),
                              len(tree.redo.get(name, []))))
    return out


def rewind_to_regenerate(session) -> None:
    """Point ``session``'s branch at its last user message, so that answering it again makes
    a new reply beside the old one (both stay: the old one on the ref log and history)."""
    session.save()
    path = session.recent(1)
    last_user = next((m for m in reversed(path) if m.role == USER), None)
    if last_user is None:
        raise UsageError(f"branch {session.branch} of session {session.id} has no message "
                         "to answer again")
    if path[-1].id != last_user.id:
        session.summary = move(session.sessions, session.id, session.branch, last_user,
                               "regenerate", session.stored_head)


def rewind_to_edit(session, number: int) -> None:
    """Point ``session``'s branch at the parent of its message ``number`` (a user message), so
    that the next message becomes its sibling; the original path stays reachable."""
    session.save()
    if not session.stored:
        raise UsageError("--edit needs a session with messages")
    path = session.sessions.store.path(session.id, session.stored_head, 0)
    message = message_at(path, number, session.id, session.branch, lowest=1)
    if message is None or message.role != USER:
        raise UsageError(f"message {number} of branch {session.branch} is not one of yours",
                         hint=f"--edit replaces a user message; see aish --list-branches "
                         f"{session.id} for the branch's length")
    parent = path[number - 2] if number > 1 else None
    session.summary = move(session.sessions, session.id, session.branch, parent, "edit",
                           session.stored_head)


@dataclass
class MergePlan:
    """What a merge of ``src`` into ``dst`` does; nothing is stored until it is applied."""

    mode: str
    src: str
    dst: str
    dst_head: Head
    target: Message | None = None  # ff: where dst moves
    copies: list[Message] | None = None  # pick: the messages copied onto dst
    since: list[Message] | None = None  # summary: src's messages since it last folded in

    @property
    def changes(self) -> int:
        if self.mode == "ff":
            return 0 if self.target is None else 1
        return len(self.copies or self.since or [])


def _paths(sessions: Sessions, sid: str, src: str, dst: str):
    summary = sessions.summary(sid)
    src_head, dst_head = head_of(summary, src), head_of(summary, dst)
    if src == dst:
        raise UsageError(f"cannot merge branch {src} into itself")
    loaded = sessions.store.load(summary.id)
    by_id = loaded.by_id()
    return dst_head, path_in(by_id, src_head.id), path_in(by_id, dst_head.id)


def plan_merge(sessions: Sessions, sid: str, src: str, dst: str, mode: str,
               pick: tuple[int, int] | None = None) -> MergePlan:
    from aish.errors import Refused

    dst_head, src_path, dst_path = _paths(sessions, sid, src, dst)
    on_dst = {m.id for m in dst_path}
    plan = MergePlan(mode, src, dst, dst_head)
    if mode == "ff":
        src_ids = [m.id for m in src_path]
        if dst_head.id and dst_head.id not in src_ids:
            common = _common(src_path, dst_path)
            ahead = len(dst_path) - common
            raise Refused(f"branch {dst} is not behind {src}: it has {ahead} message"
                          f"{'s' if ahead != 1 else ''} that {src} does not (after message "
                          f"{common})", hint="merge with --mode summary or --mode pick")
        if src_path and src_path[-1].id != dst_head.id:
            plan.target = src_path[-1]
        return plan
    if mode == "pick":
        if pick is None:
            raise UsageError("--mode pick needs --pick N..M (message numbers on " + src + ")")
        low, high = pick
        if high > len(src_path):
            raise UsageError(f"branch {src} has {len(src_path)} messages; --pick {low}..{high} "
                             "goes past its end")
        copied = {m.source for m in dst_path if m.source} | on_dst
        plan.copies = [m for m in src_path[low - 1:high] if m.id not in copied]
        return plan
    if mode == "summary":
        folded = {m.source for m in dst_path if m.note == "merge" and m.source}
        start = max((i + 1 for i, m in enumerate(src_path) if m.id in folded), default=0)
        start = max(start, _common(src_path, dst_path))
        plan.since = src_path[start:]
        return plan
    raise UsageError(f"unknown merge mode {mode!r}", hint="use ff, summary or pick")


def _common(a: list[Message], b: list[Message]) -> int:
    """How many messages two paths share from the root."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x.id != y.id:
            break
        count += 1
    return count


def apply_merge(sessions: Sessions, sid: str, plan: MergePlan, note: Message | None = None
                ) -> Summary | None:
    """Store ``plan`` (``note``: the summary note, for mode summary); RefMoved-safe: the
    write checks that ``dst`` is still where the plan found it."""
    from aish.messages import new_message_id

    if plan.mode == "ff":
        if plan.target is None:
            return None
        return move(sessions, sid, plan.dst, plan.target, "merge", plan.dst_head)
    if plan.mode == "pick":
        now = sessions.now()
        messages = [replace(m, id=new_message_id(), source=m.id, time=now, usage=None)
                    for m in plan.copies or []]
    else:
        messages = [note] if note is not None else []
    if not messages:
        return None
    messages = relinked(messages, plan.dst_head.id, plan.dst)
    records = [m.to_record() for m in messages]
    if plan.dst_head.pos is not None:
        records[0]["pp"] = plan.dst_head.pos
    try:
        summary = sessions.store.append(check_id(sid), records)
    except RefMoved:
        raise StorageError(f"branch {plan.dst} of session {sid} moved meanwhile",
                           hint="run the command again") from None
    sessions.audit.record("merge-branch", sid, None, src=plan.src, dst=plan.dst,
                          mode=plan.mode, messages=len(messages))
    return summary


def keep_only(messages: list[Message], refs: dict[str, str], kept: list[Message]
              ) -> tuple[list[Message], dict[str, str]]:
    """``kept`` (some of ``messages``) linked as they were, with every parent that is not
    kept replaced by its nearest kept ancestor (or the root), and each named branch of
    ``refs`` moved to the nearest kept message on its path: what a prune or clear stores."""
    by_id = {m.id: m for m in messages}
    kept_ids = {m.id for m in kept}

    def nearest(mid: str) -> str:
        seen = set()
        while mid and mid not in kept_ids and mid in by_id and mid not in seen:
            seen.add(mid)
            mid = by_id[mid].parent or ""
        return mid if mid in kept_ids else ""

    return ([replace(m, parent=nearest(m.parent or "")) for m in kept],
            {name: nearest(target) for name, target in refs.items()})
