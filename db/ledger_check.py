"""The ledger's invariants, checked from the raw rows: what a auditor would recompute.

Each check is one SQL query that returns the offending rows; none found means it holds.
"""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_POSTED = "('posted', 'post_pending')"
_UNRESOLVED_PENDING = (
    "t.phase = 'pending' AND NOT EXISTS "
    "(SELECT 1 FROM ledger_transactions r WHERE r.pending_id = t.id)"
)

# Per player wallet and UTC day, the sums of its game bets and deposit credits, recomputed from
# the entries: what `wallet_daily_totals` must hold. `{and_where}` narrows it (or is empty).
DAILY_WALLET_TOTALS = """
    SELECT e.account_id, (t.created_at AT TIME ZONE 'UTC')::date AS day,
        coalesce(sum(e.amount_minor) FILTER (WHERE t.kind = 'game_bet'), 0) AS bets,
        coalesce(sum(e.amount_minor) FILTER (WHERE t.kind = 'deposit_credit'), 0) AS deposits
    FROM ledger_entries e
    JOIN ledger_transactions t ON t.id = e.transaction_id
    JOIN ledger_accounts a ON a.id = e.account_id
    WHERE t.kind IN ('game_bet', 'deposit_credit') AND a.type = 'player_wallet' {and_where}
    GROUP BY 1, 2
"""

CHECKS: dict[str, str] = {
    "every transaction balances per currency": """
        SELECT t.key || ' ' || e.currency FROM ledger_entries e
        JOIN ledger_transactions t ON t.id = e.transaction_id
        GROUP BY t.id, t.key, e.currency
        HAVING sum(CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END) <> 0
    """,
    "posted debits equal posted credits per currency": f"""
        SELECT e.currency FROM ledger_entries e
        JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE t.phase IN {_POSTED}
        GROUP BY e.currency
        HAVING sum(CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END) <> 0
    """,
    "pending debits equal pending credits per currency": f"""
        SELECT e.currency FROM ledger_entries e
        JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE {_UNRESOLVED_PENDING}
        GROUP BY e.currency
        HAVING sum(CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END) <> 0
    """,
    "cached counters equal the sum of entries": f"""
        SELECT a.code FROM ledger_accounts a
        LEFT JOIN (
            SELECT e.account_id,
                sum(CASE WHEN e.side = 'D' AND t.phase IN {_POSTED}
                    THEN e.amount_minor ELSE 0 END) AS pd,
                sum(CASE WHEN e.side = 'C' AND t.phase IN {_POSTED}
                    THEN e.amount_minor ELSE 0 END) AS pc,
                sum(CASE WHEN e.side = 'D' AND {_UNRESOLVED_PENDING}
                    THEN e.amount_minor ELSE 0 END) AS nd,
                sum(CASE WHEN e.side = 'C' AND {_UNRESOLVED_PENDING}
                    THEN e.amount_minor ELSE 0 END) AS nc
            FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
            GROUP BY e.account_id
        ) s ON s.account_id = a.id
        WHERE a.posted_debits <> coalesce(s.pd, 0) OR a.posted_credits <> coalesce(s.pc, 0)
           OR a.pending_debits <> coalesce(s.nd, 0) OR a.pending_credits <> coalesce(s.nc, 0)
    """,
    "no balance flag is broken": """
        SELECT code FROM ledger_accounts
        WHERE debits_must_not_exceed_credits
          AND posted_debits + pending_debits > posted_credits
    """,
    "entries carry their account's currency": """
        SELECT a.code FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.currency <> a.currency
    """,
    "every pending transfer is resolved at most once, and only pendings are": """
        SELECT coalesce(p.key, r.key) FROM ledger_transactions r
        LEFT JOIN ledger_transactions p ON p.id = r.pending_id
        WHERE r.pending_id IS NOT NULL AND (p.phase IS DISTINCT FROM 'pending')
        UNION ALL
        SELECT p.key FROM ledger_transactions r JOIN ledger_transactions p ON p.id = r.pending_id
        GROUP BY p.key HAVING count(*) > 1
    """,
    # Kept by ledger_post_try (migration 0070) for the fraud rules: they must never drift.
    "per-day wallet totals equal the entries": f"""
        WITH fresh AS ({DAILY_WALLET_TOTALS.format(and_where="")})
        SELECT coalesce(f.account_id, w.account_id) || ' ' || coalesce(f.day, w.day)
        FROM fresh f FULL JOIN wallet_daily_totals w USING (account_id, day)
        WHERE coalesce(f.bets, 0) <> coalesce(w.bets_minor, 0)
           OR coalesce(f.deposits, 0) <> coalesce(w.deposits_minor, 0)
    """,
}

SETTLED_CHECK = (
    "provider clearing is zero when nothing is in flight",
    """
    SELECT a.owner_id || ' ' || a.currency FROM ledger_accounts a
    WHERE a.type = 'provider_clearing'
    GROUP BY a.owner_id, a.currency
    HAVING sum(a.posted_debits - a.posted_credits) <> 0
        OR sum(a.pending_debits + a.pending_credits) <> 0
    """,
)


# With `--through DATE`: the clearing of postings dated through DATE (an Almaty day; a
# reconciliation's settlement is dated to the day it settles, migration 0110 `recon_postings`)
# must be zero: every day up to DATE reconciled and settled. Holds still pending are in flight
# and left out; what they post is dated the day it posts.
SETTLED_THROUGH_CHECK = (
    "provider clearing of postings dated through {through} is zero",
    """
    SELECT a.owner_id || ' ' || a.currency || ' ' || sum(
        CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END)
    FROM ledger_entries e
    JOIN ledger_transactions t ON t.id = e.transaction_id
    JOIN ledger_accounts a ON a.id = e.account_id
    LEFT JOIN recon_postings rp ON rp.ledger_transaction_id = t.id
    WHERE a.type = 'provider_clearing' AND t.phase IN ('posted', 'post_pending')
      AND coalesce(rp.business_date, (t.created_at AT TIME ZONE 'Asia/Almaty')::date)
          <= CAST(:through AS date)
      AND (CAST(:owner AS varchar) IS NULL OR a.owner_id = CAST(:owner AS varchar))
    GROUP BY a.owner_id, a.currency
    HAVING sum(CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END) <> 0
    """,
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    offenders: list[str]

    @property
    def ok(self) -> bool:
        return not self.offenders


async def run_checks(
    session: AsyncSession,
    *,
    expect_settled: bool = False,
    through: date | None = None,
    provider: str | None = None,
) -> list[CheckResult]:
    """The invariants; with `expect_settled`, provider clearing at zero too: all of it, or
    (with `through`) that of postings dated through that day; `provider` narrows it to one."""
    checks: list[tuple[str, str]] = list(CHECKS.items())
    params: dict[str, object] = {}
    if expect_settled and through is not None:
        name, query = SETTLED_THROUGH_CHECK
        checks.append((name.format(through=through.isoformat()), query))
        params = {"through": through, "owner": f"provider:{provider}" if provider else None}
    elif expect_settled:
        name, query = SETTLED_CHECK
        if provider is not None:
            query = query.replace(
                "WHERE a.type = 'provider_clearing'",
                "WHERE a.type = 'provider_clearing' AND a.owner_id = :owner",
            )
            params = {"owner": f"provider:{provider}"}
        checks.append((name, query))
    results = []
    for name, query in checks:
        statement = text(query)
        rows = await session.execute(
            statement, {k: v for k, v in params.items() if f":{k}" in query}
        )
        results.append(CheckResult(name, [str(row[0]) for row in rows]))
    return results


async def totals(session: AsyncSession) -> dict[str, int]:
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM ledger_accounts) AS accounts, "
                "(SELECT count(*) FROM ledger_transactions) AS transactions, "
                "(SELECT count(*) FROM ledger_entries) AS entries"
            )
        )
    ).one()
    return {"accounts": row.accounts, "transactions": row.transactions, "entries": row.entries}
