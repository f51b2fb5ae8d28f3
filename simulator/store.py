"""The simulator's durable memory (SQLite): a real acquirer remembers tokens and charges across
restarts, and the platform's status inquiries depend on that.

The vault keeps what the simulated card behaves like, never the card number itself.
"""

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# table -> what it holds, for the cross-provider view (`GET /admin/charges`)
KINDS = {"charges": "charge", "payments": "payment", "payouts": "payout"}

# (table, provider, key, before, after, read) -> the money movements that write made (each a
# dict with an `occurred` UTC timestamp), journaled in the same transaction. `read(table,
# provider, key)` reads the store without taking its lock (the watcher runs under it).
Reader = Callable[[str, str, str], dict[str, Any] | None]
Watcher = Callable[
    [str, str, str, dict[str, Any] | None, dict[str, Any], Reader], list[dict[str, Any]]
]


class SimulatorStore:
    def __init__(self, path: Path | None) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        if path:
            # Like the Temporal dev server's SQLite: WAL and no fsync per commit. A killed
            # simulator (the chaos run kills processes) loses nothing; every charge used to wait
            # for two fsyncs, which slowed the whole machine's disk for the platform too.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tokens (provider TEXT, token TEXT, data TEXT,"
                " PRIMARY KEY (provider, token))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS charges (provider TEXT, reference TEXT, data TEXT,"
                " PRIMARY KEY (provider, reference))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS payments (provider TEXT, reference TEXT, data TEXT,"
                " PRIMARY KEY (provider, reference))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS payouts (provider TEXT, reference TEXT, data TEXT,"
                " PRIMARY KEY (provider, reference))"
            )
            for table in ("tokens", *KINDS):  # when it was first stored (older files lack it)
                columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if "created" not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN created TEXT")
            for table in KINDS:  # a lookup across providers
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_by_reference ON {table} (reference)"
                )
            # Money movements as each provider books them (simulator.reports: daily reports).
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS movements (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " provider TEXT, occurred TEXT, reference TEXT, data TEXT)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS movements_by_day ON movements (provider, occurred)"
            )
        self.watcher: Watcher | None = None

    def put_token(self, provider: str, token: str, data: dict[str, Any]) -> None:
        self._put("tokens", provider, token, data)

    def get_token(self, provider: str, token: str) -> dict[str, Any] | None:
        return self._get("tokens", provider, token)

    def put_charge(self, provider: str, reference: str, data: dict[str, Any]) -> None:
        self._put("charges", provider, reference, data)

    def get_charge(self, provider: str, reference: str) -> dict[str, Any] | None:
        return self._get("charges", provider, reference)

    def put_payment(self, provider: str, reference: str, data: dict[str, Any]) -> None:
        self._put("payments", provider, reference, data)

    def get_payment(self, provider: str, reference: str) -> dict[str, Any] | None:
        return self._get("payments", provider, reference)

    def put_payout(self, provider: str, reference: str, data: dict[str, Any]) -> None:
        self._put("payouts", provider, reference, data)

    def get_payout(self, provider: str, reference: str) -> dict[str, Any] | None:
        return self._get("payouts", provider, reference)

    def holding(self, reference: str) -> list[tuple[str, str, dict[str, Any], str | None]]:
        """(kind, provider, data, created) of everything any provider keeps under `reference`."""
        found = []
        with self._lock:
            for table, kind in KINDS.items():
                rows = self._db.execute(
                    f"SELECT provider, data, created FROM {table} WHERE reference = ?",  # noqa: S608
                    (reference,),
                ).fetchall()
                found += [
                    (kind, provider, json.loads(data), created) for provider, data, created in rows
                ]
        return found

    def payment_named_in(self, provider: str, text: str) -> str | None:
        """The reference of this provider's payment that `text` names (a payer's free-text
        payment purpose): case-insensitive, as a whole word; the longest if several."""
        lowered = text.lower()
        with self._lock:
            rows = self._db.execute(
                "SELECT reference FROM payments WHERE provider = ? AND reference != ''"
                " AND instr(?, lower(reference)) > 0 ORDER BY length(reference) DESC",
                (provider, lowered),
            ).fetchall()
        for (reference,) in rows:
            word = rf"(?<![0-9a-z_-]){re.escape(reference.lower())}(?![0-9a-z_-])"
            if re.search(word, lowered):
                return str(reference)
        return None

    def add_movement(self, provider: str, movement: dict[str, Any]) -> None:
        """Journal one money movement (`occurred`: a UTC timestamp in `stamp` form)."""
        with self._lock, self._db:
            self._journal(provider, movement)

    def movements(
        self, provider: str, start: str, end: str, *, reference: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The provider's movements with start <= occurred < end, in time order, read in chunks
        (a day of a busy provider is never held whole)."""
        after = (start, 0)  # keyset: each chunk starts where the last ended, on the index
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT occurred, seq, data FROM movements WHERE provider = ?"
                    " AND (occurred, seq) > (?, ?) AND occurred < ?"
                    " AND (? IS NULL OR reference = ?) ORDER BY occurred, seq LIMIT 1000",
                    (provider, *after, end, reference, reference),
                ).fetchall()
            if not rows:
                return
            for _occurred, seq, data in rows:
                yield {"seq": seq, **json.loads(data)}
            after = (rows[-1][0], rows[-1][1])

    def _journal(self, provider: str, movement: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO movements (provider, occurred, reference, data) VALUES (?, ?, ?, ?)",
            (provider, movement["occurred"], movement.get("reference"), json.dumps(movement)),
        )

    def _read(self, table: str, provider: str, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT data FROM {table} WHERE provider = ? AND {_key_column(table)} = ?",  # noqa: S608
            (provider, key),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _put(self, table: str, provider: str, key: str, data: dict[str, Any]) -> None:
        with self._lock, self._db:
            before = self._read(table, provider, key) if self.watcher is not None else None
            self._db.execute(
                f"INSERT INTO {table} (provider, {_key_column(table)}, data, created)"  # noqa: S608 - table is ours
                " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET data = excluded.data",
                (provider, key, json.dumps(data), datetime.now(UTC).isoformat()),
            )
            if self.watcher is not None:
                for movement in self.watcher(table, provider, key, before, data, self._read):
                    self._journal(provider, movement)

    def _get(self, table: str, provider: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT data FROM {table} WHERE provider = ? AND {_key_column(table)} = ?",  # noqa: S608
                (provider, key),
            ).fetchone()
        if row is None:
            return None
        loaded: dict[str, Any] = json.loads(row[0])
        return loaded


def _key_column(table: str) -> str:
    return {
        "tokens": "token",
        "charges": "reference",
        "payments": "reference",
        "payouts": "reference",
    }[table]
