"""The vote store's migrations: a store written by the first release, a newer file, a crash mid-migration."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.arena import migrations
from chatbot.arena.leaderboard import build_board
from chatbot.arena.migrations import SCHEMA_VERSION, VoteStoreError, canonicalise_identities
from chatbot.arena.ratings import as_tallies, comparisons_from_votes
from chatbot.arena.votes import Vote, VoteStore
from chatbot.filters import FilterSettings

FIXTURES = Path(__file__).parent / "fixtures" / "sampling_v1"
GREEDY = '{"strategy":"greedy"}'
TOP_P = '{"strategy":"sample","temperature":0.7,"top_p":0.9}'

# The schema exactly as the first release (schema version 1) created it, copied from its chatbot/votes.py.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ('A', 'B', 'tie', 'both-bad')),
    blind INTEGER NOT NULL CHECK (blind IN (0, 1)),
    swapped INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    settings_a_id TEXT NOT NULL,
    settings_a_json TEXT NOT NULL,
    settings_b_id TEXT NOT NULL,
    settings_b_json TEXT NOT NULL,
    reply_a TEXT NOT NULL,
    reply_b TEXT NOT NULL,
    conversation_json TEXT NOT NULL,
    persona TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    seed INTEGER
)
"""
V1_COLUMNS = (
    "created_at, winner, blind, swapped, settings_a_id, settings_a_json, settings_b_id, settings_b_json, "
    "reply_a, reply_b, conversation_json, persona, model, seed"
)
FALLBACK = FilterSettings().fallback_replies[0]
# (winner, reply_a, reply_b, model): a plain vote, a fallback on B, identical texts, another model
V1_VOTES = [
    ("A", "i am good, thanks for asking.", "fine.", "runs/x"),
    ("B", "hello there my friend how are you", FALLBACK, "runs/x"),
    ("tie", "I like  dogs.", "i like dogs.", ""),
    ("both-bad", "no", "yes it is", "runs/y"),
]


def write_v1_store(path: Path, votes=V1_VOTES, cleared: int = 0) -> Path:
    """A vote file as the first release wrote it (its CREATE TABLE, its user_version)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_SCHEMA)
    conn.execute("PRAGMA user_version=1")
    rows = [
        ("2026-11-01T10:00:00+00:00", w, 1, i % 2, GREEDY, GREEDY, TOP_P, TOP_P, a, b, '[{"role":"user","content":"hi"}]',
         "", model, None)
        for i, (w, a, b, model) in enumerate(votes * (cleared + 1))
    ]  # fmt: skip
    conn.executemany(f"INSERT INTO votes ({V1_COLUMNS}) VALUES ({', '.join('?' * 14)})", rows)
    if cleared:  # votes deleted later: their ids must never come back
        conn.execute("DELETE FROM votes WHERE id <= ?", (cleared * len(votes),))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def v1_store(tmp_path) -> Path:
    return write_v1_store(tmp_path / "votes.sqlite3")


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def test_first_release_store_migrates_without_losing_a_vote(v1_store):
    store = VoteStore(v1_store)
    assert version_of(v1_store) == SCHEMA_VERSION == 3
    votes = store.votes()
    assert [(v.winner, v.reply_a, v.reply_b, v.model) for v in votes] == V1_VOTES
    plain, fallback, identical, other = votes
    # derivable columns are filled: lengths, identical text, a canned fallback, the model as fingerprint source
    assert (plain.len_a, plain.len_b) == (6, 1)
    assert (fallback.provenance_a, fallback.provenance_b) == ("unknown", "fallback")
    assert identical.identical and not plain.identical
    assert [v.fingerprint for v in votes] == ["runs/x@", "runs/x@", "@", "runs/y@"]
    assert [m.fingerprint for m in store.models()] == ["runs/x@", "@", "runs/y@"]  # most votes first
    # the new store works as usual, and the kinds registry (not a CHECK) now validates winners
    store.add(Vote("A", GREEDY, GREEDY, TOP_P, TOP_P, "a", "b", fingerprint="runs/x@abc"))
    assert store.count() == 5 and store.count("runs/x@") == 2
    board = build_board(store.tallies())
    assert board.left_out == {"fallback": 1, "identical": 1} and board.rated == 3


def test_migration_keeps_the_id_counter_after_cleared_votes(tmp_path):
    path = write_v1_store(tmp_path / "votes.sqlite3", cleared=1)
    store = VoteStore(path)
    assert [v.id for v in store.votes()] == [5, 6, 7, 8]
    assert store.add(Vote("A", GREEDY, GREEDY, TOP_P, TOP_P, "a", "b")) == 9


def test_the_stored_release_fixture_migrates_and_rates_as_it_did(tmp_path):
    path = shutil.copy(FIXTURES / "votes.sqlite3", tmp_path / "votes.sqlite3")
    before = version_of(path)
    store = VoteStore(path)
    assert before == 1 and version_of(path) == SCHEMA_VERSION and store.count() == 10
    expected = json.loads((FIXTURES / "leaderboard.json").read_text())["standings"]
    board = build_board(store.tallies())
    assert sorted(round(s.rating, 2) for s in board.standings) == sorted(round(s["rating"], 2) for s in expected)


def test_a_store_from_a_newer_version_is_refused_and_left_as_it_is(v1_store):
    with sqlite3.connect(v1_store) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(VoteStoreError, match=r"written by a newer gpt2-dialogue-chatbot .*upgrade the package"):
        VoteStore(v1_store)
    assert version_of(v1_store) == SCHEMA_VERSION + 1


def test_a_failing_migration_rolls_back_to_the_old_readable_store(v1_store, monkeypatch):
    def half_done_then_fails(conn):
        migrations.add_fingerprint_provenance_lengths(conn)  # the whole rebuild, then an error
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.create_votes_table, half_done_then_fails))
    with pytest.raises(RuntimeError, match="disk on fire"):
        VoteStore(v1_store)
    with sqlite3.connect(v1_store) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [row[1] for row in conn.execute("PRAGMA table_info(votes)")]
        assert "fingerprint" not in columns and conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 4


KILLED_MIGRATION = """
import os, signal, sys
from chatbot.arena import migrations
from chatbot.arena.votes import VoteStore

def killed_midway(conn):
    migrations.add_fingerprint_provenance_lengths(conn)
    os.kill(os.getpid(), signal.SIGKILL)  # the new table is built, the transaction not committed

migrations.MIGRATIONS = (migrations.create_votes_table, killed_midway)
VoteStore(sys.argv[1])
"""


@pytest.mark.slow
def test_a_process_killed_mid_migration_leaves_the_old_store_readable(v1_store):
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", KILLED_MIGRATION, str(v1_store)], cwd=repo, timeout=120)
    assert run.returncode == -signal.SIGKILL
    with sqlite3.connect(v1_store) as conn:  # what the first release would read
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        rows = conn.execute("SELECT winner, reply_a, reply_b, model FROM votes ORDER BY id").fetchall()
        assert rows == V1_VOTES
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'votes_v2'").fetchone() is None
    assert len(VoteStore(v1_store).votes()) == 4  # and the next start migrates it


def test_stored_identities_are_re_identified_when_sampling_provides_canonical_identity(v1_store, monkeypatch):
    renamed = {GREEDY: '{"strategy":"greedy","v":2}'}
    monkeypatch.setattr(migrations.sampling, "canonical_identity", lambda i: renamed.get(i, i), raising=False)
    store = VoteStore(v1_store)
    assert {v.settings_a_id for v in store.votes()} == {renamed[GREEDY]}
    assert {v.settings_b_id for v in store.votes()} == {TOP_P}
    with sqlite3.connect(v1_store) as conn:  # idempotent: a second pass changes nothing
        assert canonicalise_identities(conn) == 0


def test_tallies_kept_by_triggers_match_the_votes_after_adds_clears_and_renames(v1_store, monkeypatch):
    store = VoteStore(v1_store)  # the migration fills the tallies from the old votes

    def recount(fingerprint=None):
        return as_tallies(comparisons_from_votes(store.votes(fingerprint)))

    assert store.tallies() == recount()
    for winner in ("A", "A", "tie"):
        store.add(Vote(winner, GREEDY, GREEDY, TOP_P, TOP_P, "one two three", "four", fingerprint="m@1"))
    assert store.tallies("m@1") == recount("m@1") and [t.n for t in store.tallies("m@1")] == [2, 1]
    assert store.tallies() == recount()
    assert store.clear("runs/x@") == 2
    assert store.tallies() == recount() and store.tallies("runs/x@") == []

    def canonical(identity):  # idempotent, as sampling.canonical_identity is
        return identity if "v2" in identity or "sample" not in identity else identity[:-1] + ',"v2":1}'

    monkeypatch.setattr(migrations.sampling, "canonical_identity", canonical, raising=False)
    with sqlite3.connect(v1_store) as conn:
        conn.isolation_level = None
        assert canonicalise_identities(conn) >= 1
    assert store.tallies() == recount() and all('"v2":1' in t.b for t in store.tallies())
    store.clear()
    assert store.tallies() == []
