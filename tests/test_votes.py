"""The A/B vote store: round trip, exports, clearing, and durability when the writer is killed."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatbot.arena.votes import VOTES_FILE, Vote, VoteStore

GREEDY = json.dumps({"do_sample": False}, sort_keys=True)
TOP_P = json.dumps({"do_sample": True, "temperature": 0.7, "top_p": 0.9}, sort_keys=True)


def make_vote(winner="A", **overrides) -> Vote:
    values = dict(
        winner=winner,
        settings_a_id=GREEDY,
        settings_a_json=GREEDY,
        settings_b_id=TOP_P,
        settings_b_json=TOP_P,
        reply_a="i am good.",
        reply_b="pretty good, you?",
        conversation=[{"role": "user", "content": "hi, how are you?"}],
        blind=True,
        swapped=True,
        persona="i like dogs.",
        model="tiny",
        seed=7,
    )
    values.update(overrides)
    return Vote(**values)


def test_round_trip_keeps_every_field(tmp_path):
    store = VoteStore.in_folder(tmp_path / "data")
    vote = make_vote("both-bad")
    vote_id = store.add(vote)
    assert vote_id == 1 and vote.id == 1
    [back] = store.votes()
    assert back == vote
    assert (tmp_path / "data" / VOTES_FILE).is_file()


def test_store_uses_wal_mode(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite3")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_winner_and_bad_settings_json_are_refused(tmp_path):
    with pytest.raises(ValueError, match="winner must be one of"):
        make_vote("left")
    with pytest.raises(json.JSONDecodeError):
        make_vote(settings_a_json="{not json")


def test_votes_persist_across_store_objects_and_clear(tmp_path):
    VoteStore(tmp_path / "v.sqlite3").add(make_vote("A"))
    VoteStore(tmp_path / "v.sqlite3").add(make_vote("tie"))
    store = VoteStore(tmp_path / "v.sqlite3")
    assert [v.winner for v in store.votes()] == ["A", "tie"]
    assert store.clear() == 2
    assert store.count() == 0
    store.add(make_vote("B"))
    assert store.count() == 1


def test_export_jsonl_and_csv(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite3")
    store.add(make_vote("A", reply_a='with "quotes", commas\nand a newline'))
    store.add(make_vote("B", blind=False, swapped=False, seed=None))

    records = [json.loads(line) for line in store.export_jsonl(tmp_path / "out/votes.jsonl").read_text().splitlines()]
    assert [r["winner"] for r in records] == ["A", "B"]
    assert records[0]["settings_b"] == {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
    assert records[0]["conversation"] == [{"role": "user", "content": "hi, how are you?"}]
    assert records[1]["seed"] is None and records[1]["blind"] is False

    with open(store.export_csv(tmp_path / "votes.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["winner"] for r in rows] == ["A", "B"]
    assert rows[0]["reply_a"] == 'with "quotes", commas\nand a newline'
    assert json.loads(rows[0]["conversation_json"])[0]["content"] == "hi, how are you?"
    assert rows[0]["settings_a_id"] == GREEDY


def test_concurrent_writers_lose_nothing(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite3")

    def write(n):
        for _ in range(n):
            store.add(make_vote("tie"))

    threads = [threading.Thread(target=write, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 40
    assert sorted(v.id for v in store.votes()) == list(range(1, 41))


WRITER = """
import sys
from tests.test_votes import make_vote
from chatbot.arena.votes import VoteStore
store = VoteStore(sys.argv[1])
while True:
    vote_id = store.add(make_vote("A", reply_a="x" * 5000))
    print(vote_id, flush=True)  # printed only after the commit returned
"""


@pytest.mark.slow
def test_killed_writer_loses_no_committed_vote_and_leaves_no_half_row(tmp_path):
    path = tmp_path / "v.sqlite3"
    VoteStore(path)
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=repo)
    committed = []
    deadline = time.monotonic() + 30
    while len(committed) < 20 and time.monotonic() < deadline:
        committed.append(int(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)  # no clean-up, no chance to finish a transaction
    proc.wait()
    committed += [int(line) for line in proc.stdout.read().split()]
    assert len(committed) >= 20

    votes = VoteStore(path).votes()
    ids = [v.id for v in votes]
    # every acknowledged vote is there, at most one more (committed but not yet printed), none torn
    assert ids[: len(committed)] == committed
    assert len(ids) - len(committed) in (0, 1)
    assert all(v.reply_a == "x" * 5000 and v.winner == "A" for v in votes)
