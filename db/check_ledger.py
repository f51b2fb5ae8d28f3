"""`python -m db.check_ledger [--expect-settled]`: recheck the ledger invariants; 1 on a breach."""

import argparse
import asyncio
import sys

from config import get_settings
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks, totals


async def main(expect_settled: bool) -> int:
    settings = get_settings()
    if not settings.database_url:
        print("PAY_DATABASE_URL is not set: point it at the database to check", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            counts = await totals(session)
            results = await run_checks(session, expect_settled=expect_settled)
    finally:
        await engine.dispose()
    print(
        f"ledger: {counts['accounts']} accounts, {counts['transactions']} transactions, "
        f"{counts['entries']} entries"
    )
    for result in results:
        verdict = "ok" if result.ok else f"BREACH ({len(result.offenders)})"
        print(f"  {verdict:>12}  {result.name}")
        for offender in result.offenders[:10]:
            print(f"                {offender}")
    breaches = sum(not r.ok for r in results)
    print("all invariants hold" if not breaches else f"{breaches} invariant(s) broken")
    return 1 if breaches else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m db.check_ledger")
    parser.add_argument("--expect-settled", action="store_true", help="clearing must be zero")
    sys.exit(asyncio.run(main(parser.parse_args().expect_settled)))
