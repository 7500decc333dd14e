"""A/B vote latency: the A/B tab's vote handler (store the vote, point ratings raw and length-controlled,
the leaderboard view) with many votes already stored, and the background bootstrap (run by hand).

    python -m evaluation.benchmarks.votes                  # 10,000 stored votes, 6 settings, 20 timed votes
    python -m evaluation.benchmarks.votes --votes 100000 --settings 10

The stored votes are synthetic: random pairs of built-in presets, random winners and sides, word
counts around 14 +- 6, and 1 in 20 replies a retry. Every timed vote is a real call of
``ABTab.vote`` on a fresh pair, in a temporary data folder; no model is loaded. The page is opened
once first (the leaderboard reads the store's tallies then, as it does when a page opens).

Two times per vote: wall clock, and the CPU time of the thread that ran the handler (on a shared
machine the wall time mostly says how busy the other processes are; the bootstrap that each vote
starts runs in another thread and is not counted).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from chatbot.app.ab_tab import ABTab
from chatbot.app.leaderboard_panel import VotesPanel
from chatbot.app.models import ModelRegistry
from chatbot.app.sessions import AppConfig, Session
from chatbot.arena.votes import Vote
from chatbot.sampling import PRESETS

FINGERPRINT = "benchmark-model@000000000000"


def synthetic_votes(n: int, settings: int, seed: int = 0) -> list[Vote]:
    rng = random.Random(seed)
    names = list(PRESETS)[:settings]
    votes = []
    for _ in range(n):
        a, b = (PRESETS[name] for name in rng.sample(names, 2))
        len_a, len_b = (max(1, int(rng.gauss(14, 6))) for _ in range(2))
        votes.append(
            Vote(
                rng.choice(["A", "B", "tie", "both-bad"]),
                a.replace(seed=None).identity,
                a.to_json(),
                b.replace(seed=None).identity,
                b.to_json(),
                "word " * len_a,
                "text " * len_b,
                conversation=[{"role": "user", "content": "hi"}],
                blind=True,
                swapped=rng.random() < 0.5,
                fingerprint=FINGERPRINT,
                provenance_a="retry" if rng.random() < 0.05 else "own",
                provenance_b="own",
            )
        )
    return votes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=10_000, help="votes stored before timing")
    parser.add_argument("--settings", type=int, default=6, help="distinct presets the votes compare")
    parser.add_argument("--timed", type=int, default=20, help="votes timed through the handler")
    args = parser.parse_args(argv)

    config = AppConfig(data_dir=Path(tempfile.mkdtemp(prefix="votes-bench-")))
    registry = ModelRegistry()  # the votes name their model's fingerprint: nothing is loaded
    panel = VotesPanel(config, registry)
    tab = ABTab(config, registry, panel)
    panel.store.add_many(synthetic_votes(args.votes, args.settings))
    tallies = len(panel.store.tallies(FINGERPRINT))
    start = time.perf_counter()
    panel.leaderboard_view(None, FINGERPRINT)  # the page opens: every tally is read once
    open_s = time.perf_counter() - start
    greedy, top_p = PRESETS["greedy"], PRESETS["top-p"]
    wall, cpu = [], []
    for k in range(args.timed):
        session = Session()
        session.pair = tab.make_pair(reply_a="i like dogs a lot.", reply_b="cats.", settings_a=top_p, settings_b=greedy,
                                     swapped=bool(k % 2), blind=True, seed=None, persona="", fingerprint=FINGERPRINT)  # fmt: skip
        start, start_cpu = time.perf_counter(), time.thread_time()
        *_, table, summary, _, _ = tab.vote(session, "left", FINGERPRINT, False)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)  # this thread: not the bootstrap's
    start = time.perf_counter()
    board = panel.live.board(FINGERPRINT, wait=True)
    bootstrap_s = time.perf_counter() - start
    rows = panel.live._counts[FINGERPRINT].rated[False].cells
    print(
        f"{panel.store.count()} votes stored in {tallies} tallies; {len(rows.cells)} fit cells, "
        f"{rows.fit_rows} rows in the point fits; page open (reads every tally) {open_s * 1000:.0f} ms"
    )
    print(f"ab vote handler: median {statistics.median(wall):.1f} ms wall, {statistics.median(cpu):.1f} ms CPU; "
          f"max {max(wall):.1f} ms wall, {max(cpu):.1f} ms CPU over {args.timed} votes")  # fmt: skip
    print(f"bootstrap intervals (2 x {config.bootstrap_rounds} refits, background): {bootstrap_s:.2f} s")
    print(f"length coefficient {board.length_coef:.3f}, rated {board.rated} of {board.total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
