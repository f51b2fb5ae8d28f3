"""`python -m risk.backtest --rules FILE --from DATE --to DATE`: how a candidate rule set would have
decided the payments already decided.

Every decision stores the facts the rules read (`fraud_decisions.facts`, issue 18). This replays
the stored facts of the decisions made in the period against the candidate rule set (a complete
rule file, optionally with `--overlay`) and prints how the outcomes would change: the decisions
replayed, a matrix of stored against candidate outcomes, each rule's hits then and now (shadow
rules included: a shadow rule's hits are what it would have done), and the payments whose outcome
changes, with the reasons each rule set gives. Nothing is written.

The database is `--database-url`, else `PAY_DATABASE_URL`. Dates are UTC days (`--to` is included)
or RFC 3339 times. Exit status 0; 2 on bad arguments.
"""

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.fraud_models import FraudDecision
from domain.fraud import RuleSet, evaluate, facts_from_json
from domain.fraud.config import RuleConfigError, load_rule_set

OUTCOMES = ("approve", "review", "decline")


@dataclass(frozen=True)
class Change:
    payment_id: str
    kind: str
    amount_minor: int
    currency: str
    created_at: datetime
    stored: str
    candidate: str
    stored_reasons: tuple[str, ...]
    candidate_reasons: tuple[str, ...]


@dataclass
class Report:
    rules_version: str
    rules_hash: str
    start: datetime
    end: datetime
    replayed: int = 0
    skipped: int = 0  # decided before decisions kept their facts
    matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    stored_hits: Counter[str] = field(default_factory=Counter)
    candidate_hits: Counter[str] = field(default_factory=Counter)
    stored_versions: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(n for (a, b), n in self.matrix.items() if a != b)

    def as_json(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "rules_hash": self.rules_hash,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "replayed": self.replayed,
            "skipped_without_facts": self.skipped,
            "changed": self.changed,
            "matrix": {f"{a}->{b}": n for (a, b), n in sorted(self.matrix.items())},
            "rule_hits": {
                code: {"stored": self.stored_hits[code], "candidate": self.candidate_hits[code]}
                for code in sorted(set(self.stored_hits) | set(self.candidate_hits))
            },
            "stored_versions": dict(self.stored_versions),
            "changes": [
                {
                    "payment_id": c.payment_id,
                    "kind": c.kind,
                    "amount": c.amount_minor,
                    "currency": c.currency,
                    "created_at": c.created_at.isoformat(),
                    "stored": c.stored,
                    "candidate": c.candidate,
                    "stored_reasons": list(c.stored_reasons),
                    "candidate_reasons": list(c.candidate_reasons),
                }
                for c in self.changes
            ],
        }


async def backtest(
    session: AsyncSession,
    rules: RuleSet,
    *,
    start: datetime,
    end: datetime,
    kind: str | None = None,
    batch: int = 1000,
) -> Report:
    """Replay the stored facts of the decisions made in [start, end) against `rules`."""
    report = Report(rules.version, rules.content_hash, start, end)
    after: tuple[datetime, str] | None = None
    while True:
        query = (
            select(FraudDecision)
            .where(FraudDecision.created_at >= start, FraudDecision.created_at < end)
            .order_by(FraudDecision.created_at, FraudDecision.payment_id)
            .limit(batch)
        )
        if kind is not None:
            query = query.where(FraudDecision.kind == kind)
        if after is not None:
            query = query.where(
                (FraudDecision.created_at > after[0])
                | ((FraudDecision.created_at == after[0]) & (FraudDecision.payment_id > after[1]))
            )
        rows = list((await session.scalars(query)).all())
        for row in rows:
            _replay(report, row, rules)
        if len(rows) < batch:
            return report
        after = (rows[-1].created_at, rows[-1].payment_id)


def _replay(report: Report, row: FraudDecision, rules: RuleSet) -> None:
    if row.facts is None:
        report.skipped += 1
        return
    decided = evaluate(facts_from_json(row.facts), rules)
    report.replayed += 1
    report.stored_versions[row.version] += 1
    candidate = decided.decision.value
    report.matrix[(row.decision, candidate)] += 1
    for stored in row.rule_results or []:
        if stored.get("hit"):
            report.stored_hits[str(stored["code"])] += 1
    for result in decided.results:
        if result.hit:
            report.candidate_hits[result.code] += 1
    if candidate != row.decision:
        report.changes.append(
            Change(
                payment_id=row.payment_id,
                kind=row.kind,
                amount_minor=row.amount_minor,
                currency=row.currency,
                created_at=row.created_at,
                stored=row.decision,
                candidate=candidate,
                stored_reasons=tuple(row.reasons),
                candidate_reasons=decided.reasons,
            )
        )


def format_report(report: Report, *, show: int = 50) -> str:
    lines = [
        f"candidate rule set {report.rules_version} (hash {report.rules_hash[:12]})",
        f"decisions from {report.start.isoformat()} to {report.end.isoformat()}: "
        f"{report.replayed} replayed, {report.skipped} skipped (no stored facts)",
        "stored rule sets: "
        + (", ".join(f"{v} x{n}" for v, n in report.stored_versions.most_common()) or "none"),
        "",
        "outcomes (rows: stored, columns: candidate)",
        f"{'':>10}" + "".join(f"{o:>10}" for o in OUTCOMES),
    ]
    for stored in OUTCOMES:
        counts = "".join(f"{report.matrix[(stored, c)]:>10}" for c in OUTCOMES)
        lines.append(f"{stored:>10}{counts}")
    lines.append(f"{report.changed} of {report.replayed} decisions would change")
    lines += ["", "rule hits (stored -> candidate)"]
    for code in sorted(set(report.stored_hits) | set(report.candidate_hits)):
        before, after = report.stored_hits[code], report.candidate_hits[code]
        mark = "" if before == after else f"  ({after - before:+d})"
        lines.append(f"  {code:<40} {before:>6} -> {after:<6}{mark}")
    if report.changes:
        lines += ["", f"changed decisions (first {min(show, len(report.changes))})"]
        for c in report.changes[:show]:
            lines.append(
                f"  {c.payment_id} {c.kind} {c.amount_minor} {c.currency} "
                f"{c.created_at:%Y-%m-%d %H:%M}: {c.stored} -> {c.candidate} "
                f"[{', '.join(c.stored_reasons) or '-'}] -> "
                f"[{', '.join(c.candidate_reasons) or '-'}]"
            )
    return "\n".join(lines)


def parse_when(value: str, *, end: bool) -> datetime:
    """A UTC day (`--to` includes it) or an RFC 3339 time."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


async def _run(args: argparse.Namespace, rules: RuleSet, start: datetime, end: datetime) -> int:
    from config import get_settings
    from db.engine import make_engine, make_sessionmaker

    url = args.database_url or get_settings().database_url
    if not url:
        print("set --database-url or PAY_DATABASE_URL", file=sys.stderr)
        return 2
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            report = await backtest(session, rules, start=start, end=end, kind=args.kind)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_report(report, show=args.show))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m risk.backtest",
        description="Replay stored decisions' facts against a candidate rule set.",
    )
    parser.add_argument("--rules", type=Path, required=True, help="a complete rule file (TOML)")
    parser.add_argument("--overlay", type=Path, default=None, help="merged over --rules")
    parser.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or RFC 3339")
    parser.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (included) or time")
    parser.add_argument("--kind", choices=("deposit", "withdrawal"), default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--show", type=int, default=50, help="changed decisions to list")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args(argv)
    try:
        rules = load_rule_set(args.rules, args.overlay)
        start, end = parse_when(args.start, end=False), parse_when(args.end, end=True)
    except (OSError, ValueError, RuleConfigError) as exc:
        print(f"risk.backtest: {exc}", file=sys.stderr)
        return 2
    if end <= start:
        print("risk.backtest: --to must be after --from", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, rules, start, end))


if __name__ == "__main__":
    sys.exit(main())
