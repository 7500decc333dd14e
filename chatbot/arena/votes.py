"""The A/B vote store: one SQLite file in the app's data folder.

Every vote is one row written in one transaction, in WAL mode with ``synchronous=FULL``: once
:meth:`VoteStore.add` returns, the vote survives a crash, a kill or a power cut, and a write that
was interrupted leaves no row at all (SQLite rolls an uncommitted transaction back on the next
open). Each operation opens its own short-lived connection, so the store is safe to share between
the web server's worker threads and between processes.

    store = VoteStore.in_folder("~/.local/share/gpt2-dialogue-chatbot")
    store.add(Vote(winner="A", ...))
    store.export_csv("votes.csv"); store.clear()

"A" and "B" always name the sampling panels, never the screen positions: in blind mode the app
swaps the columns on screen and translates the user's choice back before storing it (``swapped``
records that it did, so position bias can be measured).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

VOTES_FILE = "votes.sqlite3"
WINNERS = ("A", "B", "tie", "both-bad")
SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ({", ".join(repr(w) for w in WINNERS)})),
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


def utc_now() -> str:
    """An ISO 8601 UTC timestamp with seconds, e.g. 2026-11-25T15:10:46+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Vote:
    """One A/B judgement and everything needed to replay or audit it."""

    winner: str  # one of WINNERS; "A"/"B" name the panels, not the screen sides
    settings_a_id: str  # the settings' stable identity (canonical JSON)
    settings_a_json: str  # the full settings as JSON
    settings_b_id: str
    settings_b_json: str
    reply_a: str
    reply_b: str
    # the shared conversation the two replies answer: [{"role": "user"|"assistant", "content": str}, ...]
    conversation: list[dict] = field(default_factory=list)
    blind: bool = False
    swapped: bool = False  # blind mode showed B on the left
    persona: str = ""
    model: str = ""
    seed: int | None = None
    created_at: str = field(default_factory=utc_now)
    id: int | None = None  # set by the store

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"winner must be one of {', '.join(WINNERS)} (got {self.winner!r})")
        for name in ("settings_a_json", "settings_b_json"):
            json.loads(getattr(self, name))  # fail here, not in the leaderboard, on a malformed settings JSON

    def to_record(self) -> dict:
        """A JSON-ready dict with the settings parsed, as the JSONL export writes it."""
        record = asdict(self)
        record["settings_a"] = json.loads(record.pop("settings_a_json"))
        record["settings_b"] = json.loads(record.pop("settings_b_json"))
        return record


_COLUMNS = [f.name for f in fields(Vote) if f.name not in ("id", "conversation")] + ["conversation_json"]


def _row_to_vote(row: sqlite3.Row) -> Vote:
    data = dict(row)
    data["conversation"] = json.loads(data.pop("conversation_json"))
    data["blind"], data["swapped"] = bool(data["blind"]), bool(data["swapped"])
    return Vote(**data)


class VoteStore:
    """Votes in a SQLite file; every method is one short transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # WAL persists in the file; set once. Readers then never block the writer.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @classmethod
    def in_folder(cls, data_dir: str | os.PathLike) -> VoteStore:
        return cls(Path(data_dir).expanduser() / VOTES_FILE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly one vote
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            # FULL: in WAL mode NORMAL may lose the last commits on power loss; a vote must not
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock upgrading later
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def add(self, vote: Vote) -> int:
        """Store one vote durably; returns its id (also set on ``vote``)."""
        values = {**{c: getattr(vote, c) for c in _COLUMNS if c != "conversation_json"}}
        values["conversation_json"] = json.dumps(vote.conversation, ensure_ascii=False)
        values["blind"], values["swapped"] = int(vote.blind), int(vote.swapped)
        placeholders = ", ".join(f":{c}" for c in _COLUMNS)
        with self._transaction() as conn:
            cursor = conn.execute(f"INSERT INTO votes ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values)
            vote.id = int(cursor.lastrowid)
        logger.info("vote %d stored: %s (%s)", vote.id, vote.winner, "blind" if vote.blind else "open")
        return vote.id

    def votes(self) -> list[Vote]:
        """All votes, oldest first."""
        with self._connect() as conn:
            return [_row_to_vote(r) for r in conn.execute("SELECT * FROM votes ORDER BY id")]

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0])

    def clear(self) -> int:
        """Delete every vote; returns how many there were."""
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM votes").rowcount
        logger.info("cleared %d votes from %s", deleted, self.path)
        return deleted

    def export_jsonl(self, path: str | os.PathLike) -> Path:
        """One JSON object per vote, settings and conversation as nested JSON."""
        return _write_atomically(path, lambda f: _write_jsonl(f, self.votes()))

    def export_csv(self, path: str | os.PathLike) -> Path:
        """One row per vote; the conversation and the settings stay JSON strings in their cells."""
        return _write_atomically(path, lambda f: _write_csv(f, self.votes()))


def _write_jsonl(f, votes: list[Vote]) -> None:
    for vote in votes:
        f.write(json.dumps(vote.to_record(), ensure_ascii=False) + "\n")


def _write_csv(f, votes: list[Vote]) -> None:
    header = ["id", *_COLUMNS]
    writer = csv.DictWriter(f, fieldnames=header)
    writer.writeheader()
    for vote in votes:
        row = {c: getattr(vote, c) for c in header if c != "conversation_json"}
        row["conversation_json"] = json.dumps(vote.conversation, ensure_ascii=False)
        writer.writerow(row)


def _write_atomically(path: str | os.PathLike, write) -> Path:
    """Write through a temporary file and rename it, so a reader never sees half an export."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        write(f)
    os.replace(tmp, path)
    return path
