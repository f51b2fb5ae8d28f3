"""`python -m db.check_ledger [--expect-settled [--through DATE] [--provider NAME]]`: recheck the
ledger invariants; 1 on a breach. `--through DATE`: only the clearing of postings dated through
that Asia/Almaty day must be zero (every day up to it reconciled and settled)."""

import argparse
import asyncio
import sys
from datetime import date

from config import get_settings
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks, totals


async def main(
    expect_settled: bool, through: date | None = None, provider: str | None = None
) -> int:
    settings = get_settings()
    if not settings.database_url:
        print("PAY_DATABASE_URL is not set: point it at the database to check", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            counts = await totals(session)
            results = await run_checks(
                session, expect_settled=expect_settled, through=through, provider=provider
            )
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
    parser.add_argument(
        "--through",
        type=date.fromisoformat,
        help="with --expect-settled: only postings dated through this day (YYYY-MM-DD)",
    )
    parser.add_argument("--provider", help="with --expect-settled: only this provider's clearing")
    args = parser.parse_args()
    if (args.through or args.provider) and not args.expect_settled:
        parser.error("--through and --provider go with --expect-settled")
    sys.exit(asyncio.run(main(args.expect_settled, args.through, args.provider)))
