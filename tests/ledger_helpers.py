"""Shared helpers for ledger tests: fresh ids and the invariant check as an assertion."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.ledger_check import run_checks


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def assert_invariants(
    sessions: async_sessionmaker[AsyncSession], *, expect_settled: bool = False
) -> None:
    async with sessions() as session:
        results = await run_checks(session, expect_settled=expect_settled)
    broken = {r.name: r.offenders[:5] for r in results if not r.ok}
    assert not broken, broken
