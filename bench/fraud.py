"""`python -m bench.fraud`: how fast a fraud decision is for a player with a long history.

It starts its own embedded PostgreSQL in a temporary directory (or uses `--database-url` /
`PAY_DATABASE_URL`), migrates it and seeds, with set-based SQL:

* one heavy player with `--history` deposits over 180 days (3 cards, 2 devices, 3 IPs), a
  tenth as many (paid) withdrawals, and `--bets` game bets in the wallet's ledger (the ledger
  trigger of migration 0050 keeps its per-day totals);
* `--others` other players with 40 deposits and 5 withdrawals each, the deposits sharing some
  of those cards/devices/IPs,
  so the indexes have neighbours to skip, and 100 ledger bets each (inserted in time order,
  as posting does: transaction ids grow with time).

Then it times, `--runs` times each, the evaluation the activities do (gather the facts in one
query through a pooled session, then run the configured rules) for a new deposit and a new
withdrawal of the heavy player, and the whole deposit decision as the deposit's activity makes
it (`decision`: read the deposit, lock its person, card and device, the facts, the rules, store
the decision and its review and alerts, commit: `activities.fraud.assess_deposit`), prints
p50/p95/p99/max and the statements each took, and prints the query plans (`EXPLAIN ANALYZE`)
with the indexes they use. Exit status 3 when a p99 exceeds `--max-p99-ms` or a plan scans a
table sequentially.
"""

import argparse
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from activities.fraud import assess_deposit
from bench.database import add_database_argument, run_on_database
from db import fraud as fraud_store
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import DAILY_WALLET_TOTALS
from db.models import Deposit
from domain.fraud import RuleSet, RuleSource, evaluate
from domain.withdrawals import destination_fingerprint

_SEED = (
    """
INSERT INTO players (id, external_id, iin, full_name, birth_date, phone)
SELECT :p || g, :p || 'ext' || g, lpad((900101300000 + g)::text, 12, '0'),
       'Bench Player', DATE '1990-01-01', '+77011234567'
FROM generate_series(0, :others) g;

INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, provider, card,
                      client, workflow_id, created_at, updated_at)
SELECT :p || 'dep' || g, :p || '0', 100000 + (g % 50) * 1000, 'KZT', 'card',
       CASE WHEN g % 17 = 0 THEN 'failed' ELSE 'succeeded' END, 'halyk',
       jsonb_build_object('bin', '440563', 'last4', lpad((g % 3)::text, 4, '0')),
       jsonb_build_object('ip', '2.133.0.' || (g % 3), 'device_id', :p || 'dev' || (g % 2)),
       'wf', now() - g * (interval '180 days' / :history),
       now() - g * (interval '180 days' / :history)
FROM generate_series(1, :history) g;

INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, provider, card,
                      client, workflow_id, created_at, updated_at)
SELECT :p || 'odep' || g, :p || (1 + g % :others), 50000, 'KZT', 'card', 'succeeded', 'halyk',
       jsonb_build_object('bin', '440563', 'last4', lpad((g % 997)::text, 4, '0')),
       jsonb_build_object('ip', '2.133.1.' || (g % 200), 'device_id', :p || 'odev' || (g % 700)),
       'wf', now() - (g % 4320) * interval '1 hour', now() - (g % 4320) * interval '1 hour'
FROM generate_series(1, :others * 40) g;

INSERT INTO fraud_decisions (payment_id, kind, player_id, amount_minor, currency, method,
                             card_key, card_country, device_id, ip, ip_country, destination_key,
                             decision, score, reasons, version, created_at)
SELECT id, 'deposit', player_id, amount_minor, currency, method,
       (card->>'bin') || ':' || (card->>'last4'), 'KZ', client->>'device_id', client->>'ip', 'KZ',
       NULL, 'approve', 0, '[]'::jsonb, 'bench', created_at
FROM deposits WHERE id LIKE :p || '%';

INSERT INTO fraud_decisions (payment_id, kind, player_id, amount_minor, currency, method,
                             card_key, card_country, device_id, ip, ip_country, destination_key,
                             decision, score, reasons, version, created_at)
SELECT :p || 'wd' || g, 'withdrawal', :p || '0', 500000, 'KZT', 'bank_transfer', NULL, NULL,
       :p || 'dev' || (g % 2), '2.133.0.1', 'KZ', :destination, 'approve', 0, '[]'::jsonb,
       'bench', now() - g * (interval '180 days' / (:history / 10))
FROM generate_series(1, :history / 10) g;

INSERT INTO withdrawals (id, player_id, amount_minor, currency, method, destination,
                         destination_fingerprint, status, provider, approvals_needed, workflow_id,
                         created_at, updated_at)
SELECT payment_id, player_id, amount_minor, currency, method, '{}'::jsonb, destination_key, 'paid',
       'kazbank', 1, 'wf', created_at, created_at
FROM fraud_decisions WHERE payment_id LIKE :p || 'wd%';

INSERT INTO withdrawals (id, player_id, amount_minor, currency, method, destination,
                         destination_fingerprint, status, provider, approvals_needed, workflow_id,
                         created_at, updated_at)
SELECT :p || 'owd' || g, :p || (1 + g % :others), 200000, 'KZT', 'bank_transfer', '{}'::jsonb,
       md5(:p || g::text), CASE WHEN g % 9 = 0 THEN 'rejected' ELSE 'paid' END, 'kazbank', 1,
       'wf', now() - (g % 4320) * interval '1 hour', now() - (g % 4320) * interval '1 hour'
FROM generate_series(1, :others * 5) g;

INSERT INTO ledger_accounts (code, type, currency, owner_id, debits_must_not_exceed_credits,
                             posted_debits, posted_credits, pending_debits, pending_credits)
VALUES ('player:' || :p || '0:wallet:KZT', 'player_wallet', 'KZT', :p || '0', false, 0, 0, 0, 0);

INSERT INTO ledger_transactions (key, kind, payment_id, content_hash, created_at)
SELECT :p || 'tx' || g, CASE WHEN g % 5 = 0 THEN 'deposit_credit' ELSE 'game_bet' END, NULL, 'x',
       now() - (:bets - g) * (interval '180 days' / :bets)
FROM generate_series(1, :bets) g;

INSERT INTO ledger_accounts (code, type, currency, owner_id, debits_must_not_exceed_credits,
                             posted_debits, posted_credits, pending_debits, pending_credits)
SELECT 'player:' || :p || g || ':wallet:KZT', 'player_wallet', 'KZT', :p || g, false, 0, 0, 0, 0
FROM generate_series(1, :others) g;

INSERT INTO ledger_transactions (key, kind, payment_id, content_hash, created_at)
SELECT :p || 'otx' || g, CASE WHEN g % 5 = 0 THEN 'deposit_credit' ELSE 'game_bet' END, NULL, 'x',
       now() - (:others * 100 - g) * (interval '180 days' / (:others * 100))
FROM generate_series(1, :others * 100) g;

INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency)
SELECT t.id, a.id, 'D', 20000, 'KZT'
FROM ledger_transactions t
JOIN ledger_accounts a ON a.code = 'player:' || :p || (1 + t.id % :others) || ':wallet:KZT'
WHERE t.key LIKE :p || 'otx%';

INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency)
SELECT t.id, a.id, CASE WHEN t.kind = 'game_bet' THEN 'D' ELSE 'C' END, 20000, 'KZT'
FROM ledger_transactions t, ledger_accounts a
WHERE t.key LIKE :p || 'tx%' AND a.code = 'player:' || :p || '0:wallet:KZT';

-- ledger_post keeps these per-day totals, so history written around it computes them once.
INSERT INTO wallet_daily_totals (account_id, day, bets_minor, deposits_minor)
"""
    + DAILY_WALLET_TOTALS.format(and_where="AND t.key LIKE :p || '%tx%'")
    + """;

ANALYZE;
"""
)

Evaluation = Callable[[AsyncSession], Awaitable[Any]]


def backend_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a local PostgreSQL backend (None when it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StatementCount:
    """The statements the engine sends (BEGIN and COMMIT are not statements here)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def seed(
    sessions: async_sessionmaker[AsyncSession], args: argparse.Namespace, p: str
) -> None:
    params = {
        "p": p,
        "history": args.history,
        "others": args.others,
        "bets": args.bets,
        "destination": destination_fingerprint("bank_transfer", f"KZ{p}"),
    }
    async with sessions.begin() as session:
        for statement in filter(str.strip, _SEED.split(";")):
            names = set(re.findall(r"(?<!:):([a-z]+)", statement))
            await session.execute(text(statement), {k: v for k, v in params.items() if k in names})


async def bench(args: argparse.Namespace, url: str, out: Callable[[str], None]) -> int:
    engine = make_engine(url, pool_size=4)
    sessions = make_sessionmaker(engine)
    statements = StatementCount(engine)
    rules: RuleSet = RuleSource().current()
    p = f"b{uuid.uuid4().hex[:6]}_"
    player_id = f"{p}0"
    try:
        started = time.perf_counter()
        await seed(sessions, args, p)
        async with sessions() as session:
            counts = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM deposits), "
                        "(SELECT count(*) FROM fraud_decisions), "
                        "(SELECT count(*) FROM ledger_entries)"
                    )
                )
            ).one()
        out(
            f"seeded in {time.perf_counter() - started:.1f}s: deposits={counts[0]} "
            f"fraud_decisions={counts[1]} ledger_entries={counts[2]}; heavy player {player_id}: "
            f"{args.history} deposits, {args.history // 10} withdrawals, {args.bets} ledger bets"
        )
        deposit_signals = fraud_store.Signals.of(
            card={"bin": "440563", "last4": "0001", "issuer_country": "KZ"},
            client={"ip": "2.133.0.1", "device_id": f"{p}dev1"},
        )

        async def deposit(session: AsyncSession) -> Any:
            facts = await fraud_store.deposit_facts(
                session,
                deposit_id="dep_bench",
                player_id=player_id,
                amount_minor=150_000,
                currency="KZT",
                method="card",
                signals=deposit_signals,
                rules=rules,
                now=datetime.now(UTC),
            )
            return evaluate(facts, rules)

        async def withdrawal(session: AsyncSession) -> Any:
            facts, _ = await fraud_store.withdrawal_facts(
                session,
                player_id=player_id,
                amount_minor=500_000,
                currency="KZT",
                method="card",
                destination_fingerprint=destination_fingerprint("bank_transfer", f"KZ{p}"),
                rules=rules,
                now=datetime.now(UTC),
                destination_name="BENCH PLAYER",
                card={"bin": "440563", "last4": "0001"},
                client={"ip": "2.133.0.1", "device_id": f"{p}dev1"},
            )
            return evaluate(facts, rules)

        # The deposit the whole decision is made about (again each run: the decision, review and
        # alerts are upserted, as a retried activity does).
        decided_id = f"{p}dep_bench"
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, "
                    "card, client, details, workflow_id) VALUES (:id, :player, 150000, 'KZT', "
                    "'card', 'pending', CAST(:card AS jsonb), CAST(:client AS jsonb), '{}', 'wf')"
                ),
                {
                    "id": decided_id,
                    "player": player_id,
                    "card": '{"bin": "440563", "last4": "0001", "issuer_country": "KZ"}',
                    "client": f'{{"ip": "2.133.0.1", "device_id": "{p}dev1"}}',
                },
            )

        async def decision(session: AsyncSession) -> Any:
            row = await session.get(Deposit, decided_id)  # as the activity reads it
            assert row is not None
            return await assess_deposit(session, deposit=row, rules=rules)

        failed = False
        for name, run in (("deposit", deposit), ("withdrawal", withdrawal), ("decision", decision)):
            # A transaction that commits, as in the activities: psycopg prepares a statement run
            # five times on a connection and keeps it until a ROLLBACK on that connection, and
            # PostgreSQL then reuses its generic plan instead of planning each time.
            for _ in range(args.warmup):
                async with sessions.begin() as session:
                    await run(session)
            async with sessions.begin() as session:
                backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            cpu_before = backend_cpu_seconds(backend)
            client_before = time.process_time()
            timings: list[float] = []
            sent = statements.count
            for _ in range(args.runs):
                t0 = time.perf_counter()
                async with sessions.begin() as session:
                    decided = await run(session)
                timings.append((time.perf_counter() - t0) * 1000)
            p99 = percentile(timings, 0.99)
            per_run = (statements.count - sent) / args.runs
            out(
                f"{name:<10} n={len(timings)} p50={percentile(timings, 0.50):.2f}ms "
                f"p95={percentile(timings, 0.95):.2f}ms p99={p99:.2f}ms "
                f"max={max(timings):.2f}ms statements/run={per_run:.1f} "
                f"decision={decided.decision.value} reasons={list(decided.reasons)}"
            )
            client = (time.process_time() - client_before) / args.runs * 1000
            cpu_after = backend_cpu_seconds(backend)
            if cpu_before is not None and cpu_after is not None:
                # What the server and this process spent per evaluation, whatever else competes
                # for the machine (one pooled connection serves these sequential runs).
                per_query = (cpu_after - cpu_before) / args.runs * 1000
                out(
                    f"{name:<10} CPU per evaluation: server {per_query:.2f}ms, "
                    f"client {client:.2f}ms"
                )
            failed |= p99 > args.max_p99_ms
            if name == "decision":
                continue
            marker = "rg_x AS" if name == "deposit" else "turn AS"
            async with sessions.begin() as session:
                cached = (
                    await session.execute(
                        text(
                            "SELECT coalesce(sum(generic_plans), 0), "
                            "coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
                            "WHERE strpos(statement, :marker) > 0"
                        ),
                        {"marker": marker},
                    )
                ).one()
            out(f"{name:<10} prepared fact queries: generic plans={cached[0]} custom={cached[1]}")

        for kind in ("deposit", "withdrawal"):
            signals = deposit_signals
            if kind == "withdrawal":
                signals = fraud_store.Signals.of(
                    card={"bin": "440563", "last4": "0001"},
                    client={"ip": "2.133.0.1", "device_id": f"{p}dev1"},
                    destination_key=destination_fingerprint("bank_transfer", f"KZ{p}"),
                )
            query = fraud_store.build_query(
                kind=kind,
                payment_id="x",
                player_id=player_id,
                currency="KZT",
                signals=signals,
                rules=rules,
                now=datetime.now(UTC),
                card_for_payout=True,
            )
            async with sessions() as session:
                plan = [
                    row[0]
                    for row in (
                        await session.execute(text("EXPLAIN ANALYZE " + query.sql), query.params)
                    ).all()
                ]
            indexes = sorted(set(re.findall(r"using (\w+)", " ".join(plan))))
            # Small tables (players, limits) may be read whole; history tables never.
            seq = [
                line.strip()
                for line in plan
                if re.search(
                    r"Seq Scan on (fraud_decisions|deposits|withdrawals|wallet_\w+|ledger_\w+)",
                    line,
                )
            ]
            timing = [line.strip() for line in plan if line.startswith(("Planning", "Execution"))]
            out(f"{kind} plan: {'; '.join(timing)}; indexes: {', '.join(indexes)}")
            out(f"{kind} plan: sequential scans: {seq or 'none'}")
            if args.show_plans:
                out("\n".join(plan))
            failed |= bool(seq)
        return 3 if failed else 0
    finally:
        await engine.dispose()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fraud", description=__doc__)
    parser.add_argument("--history", type=int, default=5_000, help="the heavy player's deposits")
    parser.add_argument("--bets", type=int, default=20_000, help="the heavy player's ledger bets")
    parser.add_argument(
        "--others", type=int, default=2_000, help="other players (40 deposits, 100 bets each)"
    )
    parser.add_argument("--runs", type=int, default=2_000, help="timed evaluations per kind")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--max-p99-ms", type=float, default=20.0)
    parser.add_argument("--show-plans", action="store_true", help="print the full plans")
    add_database_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_database(parse(argv), bench, name="fraud")


if __name__ == "__main__":
    sys.exit(main())
