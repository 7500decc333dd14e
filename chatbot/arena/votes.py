"""The A/B vote store: one SQLite file in the app's data folder.

Every vote is one row written in one transaction, in WAL mode with ``synchronous=FULL``: once
:meth:`VoteStore.add` returns, the vote survives a crash, a kill or a power cut, and a write that
was interrupted leaves no row at all (SQLite rolls an uncommitted transaction back on the next
open). Each operation opens its own short-lived connection, so the store is safe to share between
the web server's worker threads and between processes. The schema is built and upgraded by the
versioned steps of :mod:`chatbot.arena.migrations`; a file from a newer version is refused.

    store = VoteStore.in_folder("~/.local/share/gpt2-dialogue-chatbot")
    store.add(Vote(winner="A", ...))
    store.tallies(fingerprint)            # votes counted per (pair, outcome, side, length, provenance)
    store.export_csv("votes.csv"); store.clear(fingerprint)

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from chatbot.arena.kinds import WINNERS
from chatbot.arena.migrations import (
    SCHEMA_VERSION,
    TALLY_KEY,
    VoteStoreError,
    check_version,
    migrate,
    tally_exprs,
)
from chatbot.arena.provenance import PROVENANCE_NOTES, UNKNOWN, same_text, word_count
from chatbot.arena.ratings import Tally, tallies_from_rows

logger = logging.getLogger(__name__)

VOTES_FILE = "votes.sqlite3"

__all__ = ["SCHEMA_VERSION", "VOTES_FILE", "Vote", "VoteStore", "VoteStoreError", "utc_now"]


def utc_now() -> str:
    """An ISO 8601 UTC timestamp with seconds, e.g. 2026-11-25T15:10:46+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Vote:
    """One A/B judgement and everything needed to replay or audit it."""

    winner: str  # one of kinds.WINNERS; "A"/"B" name the panels, not the screen sides
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
    fingerprint: str = ""  # ModelFingerprint.key of the model that made both replies
    provenance_a: str = UNKNOWN  # how reply A was made: own, retry, fallback (chatbot.arena.provenance)
    provenance_b: str = UNKNOWN
    len_a: int | None = None  # words; derived from the reply when not given
    len_b: int | None = None
    created_at: str = field(default_factory=utc_now)
    id: int | None = None  # set by the store

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"winner must be one of {', '.join(WINNERS)} (got {self.winner!r})")
        for name in ("provenance_a", "provenance_b"):
            if getattr(self, name) not in PROVENANCE_NOTES:
                raise ValueError(f"{name} must be one of {', '.join(PROVENANCE_NOTES)} (got {getattr(self, name)!r})")
        for name in ("settings_a_json", "settings_b_json"):
            json.loads(getattr(self, name))  # fail here, not in the leaderboard, on a malformed settings JSON
        self.len_a = word_count(self.reply_a) if self.len_a is None else self.len_a
        self.len_b = word_count(self.reply_b) if self.len_b is None else self.len_b

    @property
    def identical(self) -> bool:
        """The two replies read the same (ignoring case and spacing): the vote says nothing about the settings."""
        return same_text(self.reply_a, self.reply_b)

    def to_record(self) -> dict:
        """A JSON-ready dict with the settings parsed, as the JSONL export writes it."""
        record = asdict(self)
        record["settings_a"] = json.loads(record.pop("settings_a_json"))
        record["settings_b"] = json.loads(record.pop("settings_b_json"))
        record["identical"] = self.identical
        return record


_COLUMNS = [f.name for f in fields(Vote) if f.name not in ("id", "conversation")] + ["conversation_json", "identical"]


def _row_to_vote(row: sqlite3.Row) -> Vote:
    data = dict(row)
    data.pop("identical")  # derived from the replies
    data["conversation"] = json.loads(data.pop("conversation_json"))
    data["blind"], data["swapped"] = bool(data["blind"]), bool(data["swapped"])
    return Vote(**data)


def _insert(conn: sqlite3.Connection, vote: Vote) -> int:
    values = {c: getattr(vote, c) for c in _COLUMNS if c != "conversation_json"}
    values["conversation_json"] = json.dumps(vote.conversation, ensure_ascii=False)
    values["blind"], values["swapped"], values["identical"] = int(vote.blind), int(vote.swapped), int(vote.identical)
    placeholders = ", ".join(f":{c}" for c in _COLUMNS)
    return int(conn.execute(f"INSERT INTO votes ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values).lastrowid)


def _scope(fingerprint: str | None) -> tuple[str, tuple]:
    """A WHERE clause for one model's votes (None: every model's)."""
    return ("", ()) if fingerprint is None else ("WHERE fingerprint = ?", (fingerprint,))


@dataclass(frozen=True)
class TallyLog:
    """Votes as tallies by model fingerprint, with where the store stood when they were read.

    ``count`` and ``last_id``: the store's vote count and highest vote id at that moment. A reader
    that read up to ``last_id`` before and now sees ``count`` equal to its old count plus the new
    rows knows that no vote it counted was deleted since (ids only grow; writers take turns).
    """

    count: int
    last_id: int
    tallies: list[tuple[str, Tally]]  # (fingerprint, tally)


@dataclass(frozen=True)
class ModelVotes:
    """The votes stored for one model fingerprint: what the leaderboard's model selector lists."""

    fingerprint: str
    votes: int


class VoteStore:
    """Votes in a SQLite file; every method is one short transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reader: sqlite3.Connection | None = None  # see _read
        self._reader_lock = threading.Lock()
        with self._connect() as conn:
            check_version(conn, self.path)  # refuse a newer file before changing anything in it
            # WAL persists in the file; set once. Readers then never block the writer.
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn, self.path)

    @classmethod
    def in_folder(cls, data_dir: str | os.PathLike) -> VoteStore:
        return cls(Path(data_dir).expanduser() / VOTES_FILE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly one vote
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise VoteStoreError(f"{self.path}: cannot open the vote store ({exc}); check the --data-dir") from exc
        try:
            conn.row_factory = sqlite3.Row
            # FULL: in WAL mode NORMAL may lose the last commits on power loss; a vote must not
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise VoteStoreError(f"{self.path}: not a vote store ({exc}); pass another --data-dir") from exc
            raise
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The store's one long-lived read connection (opened on first use), for the leaderboard's
        frequent reads. Besides sparing a connection per read, it keeps the WAL file open between
        the short-lived connections: without it, each one that closes last checkpoints and deletes
        the WAL, and the next one rebuilds it, several milliseconds per vote."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            yield self._reader

    def data_version(self) -> int:
        """A number that changes whenever another connection (any thread or process) commits a change."""
        with self._read() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

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
        with self._transaction() as conn:
            vote.id = _insert(conn, vote)
        logger.info("vote %d stored: %s (%s)", vote.id, vote.winner, "blind" if vote.blind else "open")
        return vote.id

    def add_many(self, votes: list[Vote]) -> int:
        """Store votes in one transaction (an import, a benchmark); returns how many."""
        with self._transaction() as conn:
            for vote in votes:
                vote.id = _insert(conn, vote)
        return len(votes)

    def votes(self, fingerprint: str | None = None) -> list[Vote]:
        """All votes (of one model fingerprint, or of every model), oldest first."""
        where, args = _scope(fingerprint)
        with self._connect() as conn:
            return [_row_to_vote(r) for r in conn.execute(f"SELECT * FROM votes {where} ORDER BY id", args)]

    def count(self, fingerprint: str | None = None) -> int:
        where, args = _scope(fingerprint)
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM votes {where}", args).fetchone()[0])

    def tallies(self, fingerprint: str | None = None) -> list[Tally]:
        """Votes counted per (pair, winner, side swap, length covariate, provenance, identical text).

        What the ratings need, kept up to date by triggers in the ``vote_tallies`` table
        (:func:`chatbot.arena.migrations.add_vote_tallies`): far fewer rows than votes, no reply text read.
        """
        key = ", ".join(c for c in TALLY_KEY if c != "fingerprint")
        if fingerprint is None:
            query, args = f"SELECT {key}, SUM(n) FROM vote_tallies GROUP BY {key} ORDER BY {key}", ()
        else:
            query, args = f"SELECT {key}, n FROM vote_tallies WHERE fingerprint = ? ORDER BY {key}", (fingerprint,)
        with self._connect() as conn:
            conn.row_factory = None  # plain tuples: thousands of rows, read on every vote
            rows = conn.execute(query, args).fetchall()
        return tallies_from_rows(rows)

    def read_tallies(self, after_id: int | None = None) -> TallyLog:
        """Every model's tallies (``after_id`` None), or one tally per vote with an id above ``after_id``:
        what an in-memory leaderboard needs to catch up with the votes stored since it last read."""
        key = ", ".join(TALLY_KEY)
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for the state and the rows
            try:
                count, last_id = conn.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM votes").fetchone()
                if after_id is None:
                    rows = conn.execute(f"SELECT {key}, n FROM vote_tallies ORDER BY {key}").fetchall()
                else:
                    new = ", ".join(tally_exprs("votes"))
                    rows = conn.execute(f"SELECT {new}, 1 FROM votes WHERE id > ? ORDER BY id", (after_id,)).fetchall()
            finally:
                conn.execute("COMMIT")
        return TallyLog(int(count), int(last_id), [(row[0], Tally._make(row[1:])) for row in rows])

    def models(self) -> list[ModelVotes]:
        """Every model fingerprint with votes, the most voted first (read from the tallies: fast)."""
        query = "SELECT fingerprint, SUM(n) FROM vote_tallies GROUP BY fingerprint ORDER BY 2 DESC, 1"
        with self._connect() as conn:
            return [ModelVotes(fp, int(n)) for fp, n in conn.execute(query)]

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete one model fingerprint's votes (None: every vote); returns how many there were."""
        where, args = _scope(fingerprint)
        with self._transaction() as conn:
            deleted = conn.execute(f"DELETE FROM votes {where}", args).rowcount
        logger.info("cleared %d votes (%s) from %s", deleted, fingerprint or "every model", self.path)
        return deleted

    def export_jsonl(self, path: str | os.PathLike, fingerprint: str | None = None) -> Path:
        """One JSON object per vote, settings and conversation as nested JSON, the fingerprint included."""
        return _write_atomically(path, lambda f: _write_jsonl(f, self.votes(fingerprint)))

    def export_csv(self, path: str | os.PathLike, fingerprint: str | None = None) -> Path:
        """One row per vote; the conversation and the settings stay JSON strings in their cells."""
        return _write_atomically(path, lambda f: _write_csv(f, self.votes(fingerprint)))


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
