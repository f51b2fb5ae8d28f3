"""Shared helpers for ledger tests: fresh ids and the invariant check as an assertion."""

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config import child_environment
from db.ledger_check import run_checks

ROOT = Path(__file__).resolve().parent.parent


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def assert_invariants(
    sessions: async_sessionmaker[AsyncSession], *, expect_settled: bool = False
) -> None:
    async with sessions() as session:
        results = await run_checks(session, expect_settled=expect_settled)
    broken = {r.name: r.offenders[:5] for r in results if not r.ok}
    assert not broken, broken


async def run_checker(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m db.check_ledger` as an operator would, in a separate process."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "db.check_ledger", *args],
        cwd=ROOT,
        env=child_environment({"PAY_DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        check=False,
    )
