"""What a compacted session costs per message: it should not grow with the history.

Run ``python benchmarks/compaction_bench.py`` with the venv's python. In a throwaway folder,
for sessions of 100 / 1,000 / 10,000 messages on the file store (window of 10 pairs), the
session is compacted once (an instant scripted provider writes the summary), then twenty
exchanges follow with ``overflow: summarize``, so that the summary is found from the replies
that name it, past the window's edge. Printed: the median time of building the context of the
next message (the window plus the newest summary) and of one whole exchange with compaction
first, against the same for an uncompacted session.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from tree_bench import TEXT  # noqa: E402
from tree_bench import median_ms as median_of  # noqa: E402


def median_ms(work, runs: int = 15) -> float:
    return median_of(work, runs) * 1000


def session_of(sessions, sid: str, messages: int):
    from aish.messages import ASSISTANT, USER, Message

    session = sessions.create("apollo", sid)
    session.auto_save = 0
    for n in range(messages // 2):
        session.add(Message(USER, f"q{n} {TEXT}", "apollo", 1000.0 + n))
        session.add(Message(ASSISTANT, f"a{n} {TEXT}", "apollo", 1000.5 + n))
    session.save()
    return session


def main() -> None:
    # Imported here, after the paths above are set, and with the test suite's fake provider.
    from fakes import Scripted

    from aish.compaction import compact, session_on
    from aish.config import load as load_config
    from aish.sessions import Sessions
    from aish.specialists import roster
    from aish.store.filestore import FileStore

    apollo = roster({})["apollo"]
    provider = Scripted("a short summary of what came before")
    print(f"{'messages':>9} {'context (plain)':>16} {'context (compacted)':>20} "
          f"{'exchange+compact':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(load_config({"HOME": tmp}), context_window=10, overflow="summarize",
                         max_sessions=1000, auto_title=False)
        sessions = Sessions(FileStore(Path(tmp) / "s"), config)
        for size in (100, 1_000, 10_000):
            plain = session_on(sessions, session_of(sessions, f"p{size}", size).id, "main")
            compacted = session_on(sessions, session_of(sessions, f"c{size}", size).id, "main")
            compact(compacted, apollo, provider)
            compacted = session_on(sessions, compacted.id, "main")
            for n in range(20):  # the summary is now named by replies, not the window's edge
                compacted.exchange(apollo, f"more {n}", provider)
            assert compacted.context(apollo).summary is not None
            context_plain = median_ms(lambda s=plain: s.context(apollo))
            context_compacted = median_ms(lambda s=compacted: s.context(apollo))
            counter = iter(range(10**6))
            exchange = median_ms(lambda s=compacted, c=counter: s.exchange(
                apollo, f"again {next(c)}", provider), runs=9)
            print(f"{size:>9,} {context_plain:>13.2f} ms {context_compacted:>17.2f} ms "
                  f"{exchange:>14.2f} ms")


if __name__ == "__main__":
    main()
