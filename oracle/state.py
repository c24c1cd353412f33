"""The node's own SQLite file: the intake cursor, every job it has seen, and the settlement transactions it
signed (written before they are broadcast, so a crash between sending and recording loses nothing)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    model_id INTEGER NOT NULL,
    job TEXT NOT NULL,               -- the Job tuple as JSON, passed back to settle
    input_digest BLOB NOT NULL,
    input BLOB NOT NULL,
    allocation_id INTEGER,
    fallback_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    opened_block INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    status TEXT NOT NULL,            -- pending | closed
    outcome TEXT,                    -- fulfilled | failed | refunded | gone
    closed_block INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    poisoned INTEGER                 -- the failure code of a job that made an engine worker overrun or die
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (status, fallback_at);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY,
    raw TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    job_ids TEXT NOT NULL,
    status TEXT NOT NULL             -- sent | mined
);
CREATE TABLE IF NOT EXISTS allocations (
    allocation_id INTEGER PRIMARY KEY,
    engine_seconds REAL NOT NULL DEFAULT 0,
    reported INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class StoredJob:
    job_id: int
    node: str
    model_id: int
    job: tuple[Any, ...]
    input_digest: bytes
    input: bytes
    allocation_id: int | None
    fallback_at: int
    deadline: int
    seen_at: float
    poisoned: int | None = None

    def deadline_passed(self, chain_time: int) -> bool:
        return chain_time >= self.deadline


class NodeState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "poisoned" not in columns:  # a state file written before the column existed
            self._db.execute("ALTER TABLE jobs ADD COLUMN poisoned INTEGER")
        self._lock = threading.RLock()

    def exclusive(self) -> threading.RLock:
        """Held around several writes that readers must see all at once (one poll's events)."""
        return self._lock

    def close(self) -> None:
        with self._lock:  # waits for a statement another thread is running
            self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    # ── cursor ──
    def cursor(self) -> tuple[int, str] | None:
        row = self._exec("SELECT block, hash FROM cursor WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def set_cursor(self, block: int, block_hash: str) -> None:
        self._exec("INSERT INTO cursor (id, block, hash) VALUES (1, ?, ?) "
                   "ON CONFLICT (id) DO UPDATE SET block = excluded.block, hash = excluded.hash", (block, block_hash))

    # ── jobs ──
    def add_job(self, job_id: int, node: str, model_id: int, job: tuple[Any, ...], input_digest: bytes,
                payload: bytes, fallback_at: int, deadline: int, block: int) -> None:
        self._exec(
            "INSERT OR REPLACE INTO jobs (job_id, node, model_id, job, input_digest, input, fallback_at, deadline,"
            " opened_block, seen_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (str(job_id), node, model_id, json.dumps(list(job)), input_digest, payload, fallback_at, deadline,
             block, time.time()),
        )

    def set_allocation(self, job_id: int, allocation_id: int) -> None:
        self._exec("UPDATE jobs SET allocation_id = ? WHERE job_id = ?", (allocation_id, str(job_id)))
        self._exec("INSERT OR IGNORE INTO allocations (allocation_id) VALUES (?)", (allocation_id,))

    def close_jobs(self, job_ids: list[int], outcome: str, block: int | None = None) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE jobs SET status = 'closed', outcome = ?, closed_block = ?"
                " WHERE job_id = ? AND status = 'pending'",
                [(outcome, block, str(j)) for j in job_ids],
            )

    def rewind(self, block: int) -> int:
        """After a reorg from `block` on: events of dropped blocks are forgotten (jobs opened there are read
        again from the new chain, if they are still on it; a job id can be reused by another job there), and
        jobs closed there may be open again — the worker re-checks them on-chain before any work."""
        with self._lock, self._db:
            dropped = self._db.execute("DELETE FROM jobs WHERE opened_block >= ? AND status = 'pending'",
                                       (block,)).rowcount
            reopened = self._db.execute("UPDATE jobs SET status = 'pending', outcome = NULL, closed_block = NULL "
                                        "WHERE status = 'closed' AND closed_block >= ?", (block,)).rowcount
        return dropped + reopened

    def runnable(self, me: str, now: int, grace: float, limit: int) -> list[StoredJob]:
        """Pending jobs assigned to `me`, and other nodes' jobs whose fallback time (plus a grace) passed."""
        rows = self._exec(
            "SELECT job_id, node, model_id, job, input_digest, input, allocation_id, fallback_at, deadline, seen_at,"
            " poisoned FROM jobs WHERE status = 'pending' AND deadline >= ? AND (node = ? OR fallback_at + ? <= ?)"
            " ORDER BY opened_block, rowid LIMIT ?",
            (now, me, grace, now, limit),
        ).fetchall()
        return [StoredJob(int(r[0]), r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], r[6], r[7], r[8], r[9], r[10])
                for r in rows]

    def poison(self, job_id: int, failure_code: int) -> None:
        """Remembers that the job made an engine worker overrun or die (kept across restarts and reorgs)."""
        self._exec("UPDATE jobs SET poisoned = ? WHERE job_id = ?", (failure_code, str(job_id)))

    def expire(self, now: int) -> None:
        self._exec("UPDATE jobs SET status = 'closed', outcome = 'expired' WHERE status = 'pending' AND deadline < ?",
                   (now,))

    def bump_attempts(self, job_ids: list[int], give_up_after: int) -> None:
        with self._lock, self._db:
            for j in job_ids:
                self._db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE job_id = ?", (str(j),))
            self._db.execute("UPDATE jobs SET status = 'closed', outcome = 'abandoned' "
                             "WHERE status = 'pending' AND attempts >= ?", (give_up_after,))

    def job_counts(self) -> dict[str, int]:
        rows = self._exec("SELECT coalesce(outcome, status), count(*) FROM jobs GROUP BY 1").fetchall()
        return {r[0]: r[1] for r in rows}

    # ── settlement transactions ──
    def record_tx(self, tx_hash: str, raw: str, nonce: int, job_ids: list[int]) -> None:
        self._exec("INSERT OR REPLACE INTO txs (tx_hash, raw, nonce, job_ids, status) VALUES (?, ?, ?, ?, 'sent')",
                   (tx_hash, raw, nonce, json.dumps([str(j) for j in job_ids])))

    def nonce_mined(self, nonce: int) -> None:
        """One version of the transaction with this nonce was mined; its fee-bumped siblings never will be."""
        self._exec("UPDATE txs SET status = 'mined' WHERE nonce = ?", (nonce,))

    def unmined_txs(self) -> list[tuple[str, str, int]]:
        return self._exec("SELECT tx_hash, raw, nonce FROM txs WHERE status = 'sent' ORDER BY nonce").fetchall()

    # ── allocations ──
    def add_engine_time(self, allocation_id: int, seconds: float) -> None:
        self._exec("UPDATE allocations SET engine_seconds = engine_seconds + ? WHERE allocation_id = ?",
                   (seconds, allocation_id))

    def usage_to_report(self) -> list[tuple[int, float, int]]:
        return self._exec("SELECT allocation_id, engine_seconds, reported FROM allocations "
                          "WHERE CAST(engine_seconds + 0.999999 AS INTEGER) > reported").fetchall()

    def set_reported(self, allocation_id: int, seconds: int) -> None:
        self._exec("UPDATE allocations SET reported = ? WHERE allocation_id = ?", (seconds, allocation_id))
