"""The vote store's schema, built by versioned migrations recorded in ``PRAGMA user_version``.

Migration ``i`` (a small function on an open connection) takes a store from version ``i`` to
``i + 1``. Each runs in its own ``BEGIN IMMEDIATE`` transaction together with the version bump, so
a crash or an error mid-migration rolls back to the previous version, readable as before. A file
whose version is newer than :data:`SCHEMA_VERSION` was written by a newer release: it is refused,
never relabelled. Steps are append-only: an existing step never changes once released.

After the schema steps, :func:`canonicalise_identities` re-identifies the stored settings with
``chatbot.sampling.canonical_identity`` when that exists. It is not a versioned step: the identity
scheme belongs to :mod:`chatbot.sampling` and can change without a schema change, and the step is
idempotent and cheap (it looks at the distinct identities only), so it runs on every open.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from chatbot import sampling
from chatbot.arena.provenance import same_text, stored_provenance, word_count
from chatbot.arena.ratings import LENGTH_STEPS
from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)


class VoteStoreError(ChatbotError):
    """A vote file this version cannot use (written by a newer version, or not a vote store)."""


def create_votes_table(conn: sqlite3.Connection) -> None:
    """Version 1: one row per vote (the schema the first release wrote)."""
    conn.execute(
        """
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
    )


_V1_COLUMNS = (
    "id, created_at, winner, blind, swapped, settings_a_id, settings_a_json, settings_b_id, settings_b_json, "
    "reply_a, reply_b, conversation_json, persona, model, seed"
)


def add_fingerprint_provenance_lengths(conn: sqlite3.Connection) -> None:
    """Version 2: the model's fingerprint, each reply's provenance and length, identical-text flag.

    The table is rebuilt to drop the CHECK on ``winner``: the vote kinds registry
    (:mod:`chatbot.arena.kinds`) validates it, so a new kind needs no migration. Old votes get
    what can be derived: lengths and the identical flag from the texts, ``fallback`` for a reply
    that is a canned fallback (``unknown`` otherwise), and ``<model>@`` as the fingerprint (the
    source is known, the weights it had then are not).
    """
    conn.execute(
        """
        CREATE TABLE votes_v2 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            winner TEXT NOT NULL,
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
            seed INTEGER,
            fingerprint TEXT NOT NULL DEFAULT '',
            provenance_a TEXT NOT NULL DEFAULT 'unknown',
            provenance_b TEXT NOT NULL DEFAULT 'unknown',
            len_a INTEGER NOT NULL DEFAULT 0,
            len_b INTEGER NOT NULL DEFAULT 0,
            identical INTEGER NOT NULL DEFAULT 0 CHECK (identical IN (0, 1))
        )
        """
    )
    conn.execute(f"INSERT INTO votes_v2 ({_V1_COLUMNS}) SELECT {_V1_COLUMNS} FROM votes")
    derived = [
        (
            f"{model}@",
            stored_provenance(a),
            stored_provenance(b),
            word_count(a),
            word_count(b),
            int(same_text(a, b)),
            vote_id,
        )
        for vote_id, model, a, b in conn.execute("SELECT id, model, reply_a, reply_b FROM votes_v2")
    ]
    conn.executemany(
        "UPDATE votes_v2 SET fingerprint=?, provenance_a=?, provenance_b=?, len_a=?, len_b=?, identical=? WHERE id=?",
        derived,
    )
    # keep the id counter: ids of cleared votes are never handed out again
    old_seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'votes'").fetchone()
    conn.execute("DROP TABLE votes")
    conn.execute("ALTER TABLE votes_v2 RENAME TO votes")
    if old_seq is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'votes'", (old_seq[0],))
    conn.execute("CREATE INDEX votes_by_model ON votes (fingerprint)")


# The key of a tally: everything the ratings and the leaderboard look at. The length covariate is
# (len_a - len_b) / (len_a + len_b) in words, in steps of 1/LENGTH_STEPS (chatbot.arena.ratings.length_covariate).
TALLY_KEY = ("fingerprint", "settings_a_id", "settings_b_id", "winner", "swapped", "x", "provenance_a",
             "provenance_b", "identical")  # fmt: skip


def tally_exprs(row: str) -> list[str]:
    """The tally key of the votes row ``row`` (NEW or OLD in a trigger, or the table) as SQL expressions."""
    steps = f"{float(LENGTH_STEPS)}"
    x = f"ROUND({steps} * ({row}.len_a - {row}.len_b) / MAX({row}.len_a + {row}.len_b, 1)) / {steps}"
    return [x if column == "x" else f"{row}.{column}" for column in TALLY_KEY]


def _tally_match(row: str) -> str:
    return " AND ".join(f"{c} = {v}" for c, v in zip(TALLY_KEY, tally_exprs(row), strict=True))


def add_vote_tallies(conn: sqlite3.Connection) -> None:
    """Version 3: votes counted per tally key, kept up to date by triggers, so the leaderboard reads a
    few hundred counts instead of aggregating every vote row (the vote request must stay fast)."""
    key = ", ".join(TALLY_KEY)
    conn.execute(
        f"CREATE TABLE vote_tallies ({', '.join(f'{c} NOT NULL' for c in TALLY_KEY)}, n INTEGER NOT NULL, "
        f"PRIMARY KEY ({key})) WITHOUT ROWID"
    )
    exprs = ", ".join(tally_exprs("votes"))
    conn.execute(f"INSERT INTO vote_tallies ({key}, n) SELECT {exprs}, COUNT(*) FROM votes GROUP BY {exprs}")
    new = ", ".join(tally_exprs("NEW"))
    add = f"INSERT INTO vote_tallies ({key}, n) VALUES ({new}, 1) ON CONFLICT DO UPDATE SET n = n + 1;"
    remove = (
        f"UPDATE vote_tallies SET n = n - 1 WHERE {_tally_match('OLD')}; "
        f"DELETE FROM vote_tallies WHERE {_tally_match('OLD')} AND n <= 0;"
    )
    conn.execute(f"CREATE TRIGGER votes_tally_insert AFTER INSERT ON votes BEGIN {add} END")
    conn.execute(f"CREATE TRIGGER votes_tally_delete AFTER DELETE ON votes BEGIN {remove} END")
    conn.execute(f"CREATE TRIGGER votes_tally_update AFTER UPDATE ON votes BEGIN {remove} {add} END")


# index i migrates version i to i + 1; append only
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    create_votes_table,
    add_fingerprint_provenance_lengths,
    add_vote_tallies,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection, path) -> int:
    """The file's version; a newer one than this code knows is refused with what to do."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise VoteStoreError(
            f"{path}: vote store version {version} was written by a newer gpt2-dialogue-chatbot "
            f"(this one reads up to version {SCHEMA_VERSION}); upgrade the package, or pass another --data-dir"
        )
    return version


def migrate(conn: sqlite3.Connection, path) -> int:
    """Bring an autocommit connection's store to :data:`SCHEMA_VERSION`; returns the steps applied."""
    applied = 0
    while check_version(conn, path) < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")  # another process may be migrating: re-read the version under the lock
        try:
            version = check_version(conn, path)
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
                applied += 1
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if version < SCHEMA_VERSION:
            logger.info("vote store %s migrated to version %d (%s)", path, version + 1, MIGRATIONS[version].__name__)
    canonicalise_identities(conn)
    return applied


def canonicalise_identities(conn: sqlite3.Connection, canonical: Callable[[str], str] | None = None) -> int:
    """Re-identify stored settings with ``chatbot.sampling.canonical_identity`` (when it exists).

    Returns how many distinct identities changed. Looks at the distinct identities only, and writes
    only when one changes, so it costs little on every open.
    """
    canonical = canonical or getattr(sampling, "canonical_identity", None)
    if canonical is None:
        return 0
    stored = [r[0] for r in conn.execute("SELECT settings_a_id FROM votes UNION SELECT settings_b_id FROM votes")]
    changed = {}
    for identity in stored:
        try:
            new = canonical(identity)
        except (ValueError, TypeError) as exc:  # an identity this version cannot read: keep it as stored
            logger.warning("vote store: cannot re-identify %s (%s); kept as stored", identity, exc)
            continue
        if new != identity:
            changed[identity] = new
    if not changed:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in ("settings_a_id", "settings_b_id"):
            conn.executemany(f"UPDATE votes SET {column} = ? WHERE {column} = ?", [(n, o) for o, n in changed.items()])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    logger.info("vote store: %d setting identities re-identified", len(changed))
    return len(changed)
