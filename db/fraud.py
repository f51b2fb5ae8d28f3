"""Facts for the fraud rules, read from PostgreSQL in one round trip through indexes only.

`deposit_facts` and `withdrawal_facts` build `PaymentFacts`; `record_decision` stores a decision
with the signals (card fingerprint, device, IP, destination) later payments are linked by, the
facts and every rule's result (its explanation). Every query is a range on an index of
migrations 0010 and 0160 (`fraud_decisions` by player, card, device, IP and destination;
deposits by player and time; ledger entries by wallet and transaction; the live list entries).

`lock_subjects` serializes decisions that share a person, card or device (transaction-scoped
advisory locks, taken before the facts are read and held until the decision is committed), so
concurrent payments cannot all pass a velocity limit that each alone would see as unreached.
Velocity counts only payments the engine let through (approved or reviewed, provider-declined
ones included): a device the engine declined is not kept declined by its own declines.
"""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.fraud_models import FraudDecision
from domain.fraud.config import RuleSet
from domain.fraud.engine import Decision
from domain.fraud.facts import (
    Dimension,
    LimitUse,
    ListHit,
    PaymentFacts,
    PaymentKind,
    Signal,
    Velocity,
    Window,
    facts_to_json,
)
from domain.fraud.geo import bin_country, card_key, ip_country, names_match, valid_ip
from domain.iin import age_on
from domain.ledger import player_wallet

_COLUMNS: dict[Dimension, str] = {
    "player": "player_id",
    "card": "card_key",
    "device": "device_id",
    "ip": "ip",
    "destination": "destination_key",
}
_PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 30}
# Every account of the player's person (one IIN, migration 0150): velocity by player, the
# self-exclusion, cool-off, limits and the deposits counted against them apply to the person.
_PERSON_ACCOUNTS = (
    "(SELECT id FROM players WHERE person_id = "
    "(SELECT person_id FROM players WHERE id = :player_id))"
)


def _velocity_cte(dimension: Dimension) -> str:
    column = _COLUMNS[dimension]
    counted = "(f.decision <> 'decline' AND coalesce(d.status, '') NOT IN ('declined', 'failed'))"
    parts = []
    for window in ("10m", "1h", "24h"):
        # Attempts the engine itself declined do not count (provider-declined ones do).
        parts.append(
            f"count(*) FILTER (WHERE f.created_at >= :t{window} AND f.decision <> 'decline') "
            f"AS c{window}"
        )
        parts.append(
            f"coalesce(sum(f.amount_minor) FILTER (WHERE f.created_at >= :t{window} "
            f"AND {counted}), 0) AS s{window}"
        )
    parts.append(
        "count(*) FILTER (WHERE f.created_at >= :t1h AND f.amount_minor <= :small_amount "
        "AND d.status = 'failed' AND d.status_reason LIKE 'provider_declined%') AS declines"
    )
    match = (
        f"f.player_id IN {_PERSON_ACCOUNTS}" if dimension == "player" else f"f.{column} = :{column}"
    )
    return (
        f"v_{dimension} AS (SELECT {', '.join(parts)} FROM fraud_decisions f "  # noqa: S608
        "LEFT JOIN deposits d ON d.id = f.payment_id "
        f"WHERE {match} AND f.kind = :kind AND f.created_at >= :t24h "
        # No upper bound: a payment created a moment later but decided first (they are
        # serialized by lock_subjects) counts, or concurrent payments would each miss the others.
        "AND f.payment_id <> :payment_id)"
    )


def _identities_cte(dimension: Dimension) -> str:
    column = _COLUMNS[dimension]
    return (
        # One primary-key look-up per distinct player (a join would hash the players table).
        f"i_{dimension} AS (SELECT count(DISTINCT iin) FILTER (WHERE iin <> "  # noqa: S608
        "(SELECT iin FROM pl_row)) AS others FROM (SELECT (SELECT iin FROM players "
        "WHERE id = x.player_id) AS iin FROM "
        f"(SELECT DISTINCT player_id FROM fraud_decisions WHERE {column} = :{column} "
        "AND created_at >= :identity_since) x) y)"
    )


_PLAYER_CTE = "pl_row AS (SELECT iin, birth_date, full_name FROM players WHERE id = :player_id)"
_LISTS_CTE = (
    # Live block and allow list entries naming any of the payment's identifiers (migration 0160:
    # the unique index on kind and value, the GiST index on networks).
    "lst AS (SELECT coalesce(jsonb_agg(jsonb_build_object('list_type', list_type, 'kind', kind, "
    "'entry_id', id) ORDER BY id), '[]') AS hits FROM risk_list_entries "
    "WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > :now) AND ("
    "(kind = 'iin' AND value = (SELECT iin FROM pl_row)) "
    "OR (kind = 'card' AND value = :l_card) OR (kind = 'device' AND value = :l_device) "
    "OR (kind = 'iban' AND value = :l_iban) OR (kind = 'phone' AND value = :l_phone) "
    "OR (kind = 'wallet' AND value = :l_wallet) "
    "OR (kind = 'ip' AND network >>= CAST(:l_ip AS inet))))"
)
_RG_CTES = (
    # A cool-off (migration 0150) stops deposits as a self-exclusion does.
    "rg_x AS (SELECT (EXISTS (SELECT 1 FROM rg_self_exclusions WHERE player_id IN "  # noqa: S608
    f"{_PERSON_ACCOUNTS} AND until > :now) OR EXISTS (SELECT 1 FROM rg_cool_offs "
    f"WHERE player_id IN {_PERSON_ACCOUNTS} AND until > :now)) AS self_excluded)",
    "rg_l AS (SELECT jsonb_object_agg(period, amount_minor) AS limits FROM ("  # noqa: S608
    "SELECT DISTINCT ON (period) period, amount_minor FROM rg_deposit_limits "
    f"WHERE player_id IN {_PERSON_ACCOUNTS} AND effective_from <= :now "
    "ORDER BY period, effective_from DESC, id DESC) l WHERE amount_minor IS NOT NULL)",
    "rg_s AS (SELECT "  # noqa: S608
    "coalesce(sum(amount_minor) FILTER (WHERE created_at >= :d1), 0) AS daily, "
    "coalesce(sum(amount_minor) FILTER (WHERE created_at >= :d7), 0) AS weekly, "
    "coalesce(sum(amount_minor), 0) AS monthly FROM deposits "
    f"WHERE player_id IN {_PERSON_ACCOUNTS} AND created_at >= :d30 AND created_at <= :now "
    "AND id <> :payment_id AND currency = :currency "
    "AND status NOT IN ('declined', 'failed', 'expired'))",
)
_PREVIOUS_IP_CTE = (
    "ipc AS (SELECT (SELECT ip_country FROM ("
    "(SELECT ip_country, created_at FROM fraud_decisions WHERE player_id = :player_id "
    "AND kind = 'deposit' AND ip_country IS NOT NULL AND created_at <= :now "
    "AND payment_id <> :payment_id ORDER BY created_at DESC LIMIT 1) UNION ALL "
    "(SELECT ip_country, created_at FROM fraud_decisions WHERE player_id = :player_id "
    "AND kind = 'withdrawal' AND ip_country IS NOT NULL AND created_at <= :now "
    "AND payment_id <> :payment_id ORDER BY created_at DESC LIMIT 1)"
    ") y ORDER BY created_at DESC LIMIT 1) AS previous)"
)
# "Is there one such row": each branch reads its index in order and stops at the first match
# (ORDER BY the index's own order keeps the planner on the index; a count would read them all).
_DEVICE_CTE = (
    "dev AS (SELECT count(*) > 0 AS known FROM ("
    "(SELECT 1 FROM fraud_decisions WHERE device_id = :device_id AND kind = 'deposit' "
    "AND created_at < :device_known_before AND player_id = :player_id "
    "ORDER BY created_at LIMIT 1) UNION ALL "
    "(SELECT 1 FROM fraud_decisions WHERE device_id = :device_id AND kind = 'withdrawal' "
    "AND created_at < :device_known_before AND player_id = :player_id "
    "ORDER BY created_at LIMIT 1)) x)"
)
_TURNOVER_CTE = (
    # Running per-day totals kept by a trigger on ledger_entries (migration 0050): at most one
    # row per day of the look-back, whatever the player's history.
    "turn AS (SELECT coalesce(sum(bets_minor), 0) AS bets, "
    "coalesce(sum(deposits_minor), 0) AS deposits FROM wallet_daily_totals "
    "WHERE account_id = (SELECT id FROM ledger_accounts WHERE code = :wallet) "
    "AND day >= :turnover_since_day)"
)
_DESTINATION_PAID_CTE = (
    # The player's paid withdrawals to this destination: a partial index (migration 0050).
    "dpaid AS (SELECT count(*) > 0 AS paid FROM withdrawals WHERE player_id = :player_id "
    "AND destination_fingerprint = :destination_key AND status = 'paid')"
)
_CARD_DEPOSITED_CTE = (
    # EXISTS plans for the first match (an index scan that stops there), even as a generic plan.
    "cdep AS (SELECT EXISTS (SELECT 1 FROM fraud_decisions f JOIN deposits d "
    "ON d.id = f.payment_id WHERE f.card_key = :card_key AND f.kind = 'deposit' "
    "AND f.player_id = :player_id AND d.status = 'succeeded') AS deposited)"
)


_ACCOUNT_DEPOSITED_CTE = (
    # The wallet or phone of a payout is one the player deposited from (the closed loop).
    "adep AS (SELECT EXISTS (SELECT 1 FROM deposits WHERE player_id = :player_id "
    "AND status = 'succeeded' AND ((method = 'ewallet' AND details->>'account' = :l_wallet) "
    "OR (method = 'mobile_banking' AND details->>'phone' = :l_phone))) AS deposited, "
    "true AS account_deposited)"
)


@dataclass(frozen=True)
class Signals:
    """The identifiers a payment is linked to others by, as stored with its decision."""

    card_key: str | None = None
    card_country: str | None = None
    device_id: str | None = None
    ip: str | None = None
    ip_country: str | None = None
    destination_key: str | None = None
    # For the lists: the account the money comes from or goes to, normalized as the API did.
    iban: str | None = None
    phone: str | None = None
    wallet: str | None = None
    card_holder_matches: bool | None = None

    @classmethod
    def of(
        cls,
        *,
        card: dict[str, Any] | None = None,
        client: dict[str, Any] | None = None,
        destination_key: str | None = None,
        account: dict[str, Any] | None = None,
    ) -> "Signals":
        """`card`: the payment's card as stored (fingerprint, BIN, last four, whether the holder
        name matched); `client`: device and IP; `account`: a deposit's `details` or a
        withdrawal's `destination` (IBAN, phone, wallet account)."""
        card = card or {}
        client = client or {}
        account = account or {}
        ip = valid_ip(client.get("ip"))
        holder = card.get("holder_matches")

        def text_of(*keys: str) -> str | None:
            value = next((account[k] for k in keys if isinstance(account.get(k), str)), None)
            return value.strip() or None if value else None

        device = client.get("device_id")
        return cls(
            card_key=card_key(card.get("bin"), card.get("last4"), card.get("fingerprint")),
            card_country=bin_country(card.get("bin"), card.get("issuer_country")),
            device_id=device.strip() or None if isinstance(device, str) else None,
            ip=ip,
            ip_country=ip_country(ip),
            destination_key=destination_key,
            iban=text_of("iban"),
            phone=text_of("phone"),
            wallet=text_of("wallet_account", "account"),
            card_holder_matches=holder if isinstance(holder, bool) else None,
        )

    @property
    def missing(self) -> tuple[Signal, ...]:
        """The client signals this payment came without."""
        absent: list[Signal] = []
        if self.device_id is None:
            absent.append("device")
        if self.ip is None:
            absent.append("ip")
        return tuple(absent)


@dataclass(frozen=True)
class FactsQuery:
    """The statement that gathers a payment's facts, and its parameters (for EXPLAIN too)."""

    sql: str
    params: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    identity_dimensions: tuple[Dimension, ...]
    kind: PaymentKind


def build_query(
    *,
    kind: PaymentKind,
    payment_id: str,
    player_id: str,
    currency: str,
    signals: Signals,
    rules: RuleSet,
    now: datetime,
    card_for_payout: bool = False,
) -> FactsQuery:
    values: dict[Dimension, str | None] = {
        "player": player_id,
        "card": signals.card_key,
        "device": signals.device_id,
        "ip": signals.ip,
        "destination": signals.destination_key,
    }
    dimensions = tuple(d for d, v in values.items() if v is not None)
    linked: tuple[Dimension, ...] = ("device", "card", "destination")
    identity_dimensions = tuple(d for d in linked if values[d] is not None)
    ctes = [_PLAYER_CTE, _LISTS_CTE]
    ctes += [_velocity_cte(d) for d in dimensions]
    ctes += [_identities_cte(d) for d in identity_dimensions]
    ctes.append(_PREVIOUS_IP_CTE)
    if kind == "deposit":
        ctes += _RG_CTES
    else:
        ctes.append(_TURNOVER_CTE)
        if signals.destination_key is not None:
            ctes.append(_DESTINATION_PAID_CTE)
        if signals.device_id is not None:
            ctes.append(_DEVICE_CTE)
        if card_for_payout and signals.card_key is not None:
            ctes.append(_CARD_DEPOSITED_CTE)
        elif signals.wallet is not None or signals.phone is not None:
            ctes.append(_ACCOUNT_DEPOSITED_CTE)
    names = [cte.split(" AS ", 1)[0] for cte in ctes]
    sql = f"WITH {', '.join(ctes)} SELECT * FROM {', '.join(names)}"  # noqa: S608
    days = rules.fact
    params: dict[str, Any] = {
        "kind": kind,
        "payment_id": payment_id,
        "player_id": player_id,
        "currency": currency,
        "now": now,
        "t10m": now - timedelta(minutes=10),
        "t1h": now - timedelta(hours=1),
        "t24h": now - timedelta(hours=24),
        "small_amount": days("small_amount", 5_000_00),
        "identity_since": now - timedelta(days=days("identity_lookback_days", 30)),
        "d1": now - timedelta(days=1),
        "d7": now - timedelta(days=7),
        "d30": now - timedelta(days=30),
        "wallet": player_wallet(player_id, currency).code,
        # Whole UTC days: today and the look-back's days before it.
        "turnover_since_day": (
            now.astimezone(UTC) - timedelta(days=days("turnover_lookback_days", 30))
        ).date(),
        "device_known_before": now - timedelta(hours=days("known_device_min_hours", 24)),
    }
    params.update({_COLUMNS[d]: values[d] for d in dimensions})
    params.update(
        {
            "l_card": signals.card_key,
            "l_device": signals.device_id,
            "l_ip": signals.ip,
            "l_iban": signals.iban,
            "l_phone": signals.phone,
            "l_wallet": signals.wallet,
        }
    )
    return FactsQuery(sql, params, dimensions, identity_dimensions, kind)


@functools.lru_cache(maxsize=64)
def _statement(sql: str) -> TextClause:
    """The facts statement, parsed once per shape (which signals a payment has): `text()` scans
    the SQL for parameters each time it is built, a cost paid on every decision otherwise."""
    return text(sql)


@dataclass(frozen=True)
class Gathered:
    facts: PaymentFacts
    player_found: bool


async def _run(
    session: AsyncSession,
    query: FactsQuery,
    *,
    amount_minor: int,
    currency: str,
    method: str,
    signals: Signals,
    now: datetime,
    destination_name: str | None = None,
    destination_iin: str | None = None,
) -> PaymentFacts:
    row = (await session.execute(_statement(query.sql), query.params)).mappings().one_or_none()
    if row is None:
        raise LookupError("player not found")
    # Cross-joined CTEs repeat column names; read them by position per CTE instead.
    values = list(row.values())
    keys = list(row.keys())
    cursor = 0

    def take(count: int) -> dict[str, Any]:
        nonlocal cursor
        end = cursor + count
        part = dict(zip(keys[cursor:end], values[cursor:end], strict=True))
        cursor += count
        return part

    player = take(3)
    list_hits = tuple(
        ListHit(list_type=h["list_type"], kind=h["kind"], entry_id=int(h["entry_id"]))
        for h in take(1)["hits"] or ()
    )
    velocity: dict[Dimension, Velocity] = {}
    declines: dict[Dimension, int] = {}
    for dimension in query.dimensions:
        v = take(7)
        velocity[dimension] = Velocity(
            *(Window(int(v[f"c{w}"]), int(v[f"s{w}"])) for w in ("10m", "1h", "24h"))
        )
        if dimension in ("player", "card", "device"):
            declines[dimension] = int(v["declines"])
    others = {d: int(take(1)["others"]) for d in query.identity_dimensions}
    previous_ip = take(1)["previous"]
    born: date = player["birth_date"]
    facts: dict[str, Any] = {
        "kind": query.kind,
        "amount_minor": amount_minor,
        "currency": currency,
        "method": method,
        "player_age": age_on(born, now.date()),
        "velocity": velocity,
        "small_declines_1h": declines if query.kind == "deposit" else {},
        "other_identities": others,
        "card_country": signals.card_country,
        "ip_country": signals.ip_country,
        "previous_ip_country": previous_ip,
        "list_hits": list_hits,
        "missing_signals": signals.missing,
        "card_holder_matches": signals.card_holder_matches,
    }
    if query.kind == "deposit":
        excluded = take(1)["self_excluded"]
        limits = take(1)["limits"] or {}
        used = take(3)
        facts["self_excluded"] = bool(excluded)
        facts["deposit_limits"] = tuple(
            LimitUse(period=period, limit_minor=int(limit), used_minor=int(used[period]))
            for period, limit in sorted(limits.items())
        )
    else:
        turnover = take(2)
        facts["bets_lookback_minor"] = int(turnover["bets"])
        facts["deposits_lookback_minor"] = int(turnover["deposits"])
        paid_before = None
        if signals.destination_key is not None:
            paid_before = bool(take(1)["paid"])
        if signals.device_id is not None:
            facts["device_known"] = bool(take(1)["known"])
        card_deposited = None
        if cursor < len(values):
            deposited = take(len(values) - cursor)
            card_deposited = bool(deposited["deposited"])
            if "account_deposited" not in deposited:
                facts["destination_card_deposited"] = card_deposited
        if paid_before is not None:
            # Paid out there before, or deposited with (a card, a wallet, a phone): a destination
            # the player uses, the closed loop's way back.
            facts["destination_used_before"] = paid_before or bool(card_deposited)
        if destination_iin is not None or destination_name is not None:
            facts["destination_name_matches"] = (
                destination_iin == player["iin"]
                if destination_iin is not None
                else names_match(player["full_name"], destination_name or "")
            )
    return PaymentFacts(**facts)


async def deposit_facts(
    session: AsyncSession,
    *,
    deposit_id: str,
    player_id: str,
    amount_minor: int,
    currency: str,
    method: str,
    signals: Signals,
    rules: RuleSet,
    now: datetime,
) -> PaymentFacts:
    query = build_query(
        kind="deposit",
        payment_id=deposit_id,
        player_id=player_id,
        currency=currency,
        signals=signals,
        rules=rules,
        now=now,
    )
    return await _run(
        session,
        query,
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        signals=signals,
        now=now,
    )


async def withdrawal_facts(
    session: AsyncSession,
    *,
    player_id: str,
    amount_minor: int,
    currency: str,
    method: str,
    destination_fingerprint: str | None,
    rules: RuleSet,
    now: datetime,
    withdrawal_id: str = "",
    destination_name: str | None = None,
    destination_iin: str | None = None,
    card: dict[str, Any] | None = None,
    client: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
) -> tuple[PaymentFacts, Signals]:
    """Facts for a withdrawal, and the signals to pass to `record_decision` afterwards.

    `destination_fingerprint` is `domain.withdrawals.destination_fingerprint(method, value)`;
    for a payout to a card pass `card` ({bin, last4}) too, so the "card never used for a deposit"
    rule can run. `destination_name` (account holder) or `destination_iin` feed the name rule;
    `account` (the destination: IBAN, phone, wallet account) is checked against the lists.
    """
    signals = Signals.of(
        card=card, client=client, destination_key=destination_fingerprint, account=account
    )
    query = build_query(
        kind="withdrawal",
        payment_id=withdrawal_id,
        player_id=player_id,
        currency=currency,
        signals=signals,
        rules=rules,
        now=now,
        card_for_payout=method == "card",
    )
    facts = await _run(
        session,
        query,
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        signals=signals,
        now=now,
        destination_name=destination_name,
        destination_iin=destination_iin,
    )
    return facts, signals


ReviewChange = Literal["open", "drop"]

_DECISION_COLUMNS = (
    "payment_id",
    "kind",
    "player_id",
    "amount_minor",
    "currency",
    "method",
    "card_key",
    "card_country",
    "device_id",
    "ip",
    "ip_country",
    "destination_key",
    "decision",
    "score",
    "reasons",
    "version",
    "created_at",
    "facts",
    "rule_results",
    "rules_hash",
)
_JSON_COLUMNS = frozenset({"reasons", "facts", "rule_results"})
# A retried activity decides afresh: these replace the stored decision's.
_REPLACED = ("decision", "score", "reasons", "version", "facts", "rule_results", "rules_hash")


@functools.cache
def _record_statement(
    kind: PaymentKind, review: ReviewChange | None, alerts: bool = False
) -> TextClause:
    """One statement: the decision upserted, the deposit's review opened (or a pending one a
    retried step no longer asks for dropped), the alerts raised (each once per `dedupe_key`, as
    `db.monitoring.raise_alert`), and the payment's `risk` written. Built once per shape (an
    ORM upsert built per call cost more client time than the database's work)."""
    values = ", ".join(
        f"CAST(:{c} AS jsonb)" if c in _JSON_COLUMNS else f":{c}" for c in _DECISION_COLUMNS
    )
    ctes = [
        f"stored_decision AS (INSERT INTO fraud_decisions ({', '.join(_DECISION_COLUMNS)}) "  # noqa: S608
        f"VALUES ({values}) ON CONFLICT (payment_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in _REPLACED)
        + ")"
    ]
    if review == "open":
        # As db.risk.open_review: a retried step updates a review still pending, never a
        # decided one.
        ctes.append(
            "review AS (INSERT INTO deposit_reviews (deposit_id, player_id, mode, status, score, "
            "reasons) VALUES (:payment_id, :player_id, :review_mode, 'pending', :score, "
            "CAST(:reasons AS jsonb)) ON CONFLICT (deposit_id) DO UPDATE SET "
            "mode = EXCLUDED.mode, score = EXCLUDED.score, reasons = EXCLUDED.reasons "
            "WHERE deposit_reviews.status = 'pending')"
        )
    elif review == "drop":  # as db.risk.drop_pending_review
        ctes.append(
            "review AS (DELETE FROM deposit_reviews WHERE deposit_id = :payment_id "
            "AND status = 'pending')"
        )
    if alerts:
        ctes.append(
            "raised AS (INSERT INTO alerts (dedupe_key, kind, severity, subject, message, "
            "details) SELECT a.dedupe_key, a.kind, a.severity, a.subject, a.message, a.details "
            "FROM jsonb_to_recordset(CAST(:alerts AS jsonb)) AS a(dedupe_key text, kind text, "
            "severity text, subject text, message text, details jsonb) "
            "ON CONFLICT (dedupe_key) DO NOTHING)"
        )
    table = "deposits" if kind == "deposit" else "withdrawals"
    return text(
        f"WITH {', '.join(ctes)} UPDATE {table} SET risk = CAST(:risk AS jsonb) "  # noqa: S608
        "WHERE id = :payment_id"
    )


async def record_decision(
    session: AsyncSession,
    *,
    payment_id: str,
    kind: Literal["deposit", "withdrawal"],
    player_id: str,
    amount_minor: int,
    currency: str,
    method: str,
    signals: Signals,
    decision: Decision,
    created_at: datetime,
    facts: PaymentFacts | None = None,
    review: ReviewChange | None = None,
    risk: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> None:
    """Store (or, on a retried activity, replace) the payment's decision, signals and
    explanation (facts, every rule's result, the rule set's hash), and show it on the payment
    (`risk`: `decision.as_json()` unless given), in one statement. A deposit's `review`: `open`
    its review (mode `decision.review_mode`), or `drop` a pending one. `alerts`: raised in the
    same statement, each unless one with its `dedupe_key` exists (dedupe_key, kind, severity,
    subject, message, details)."""
    values: dict[str, Any] = {
        "payment_id": payment_id,
        "kind": kind,
        "player_id": player_id,
        "amount_minor": amount_minor,
        "currency": currency,
        "method": method,
        "card_key": signals.card_key,
        "card_country": signals.card_country,
        "device_id": signals.device_id,
        "ip": signals.ip,
        "ip_country": signals.ip_country,
        "destination_key": signals.destination_key,
        "decision": decision.decision.value,
        "score": decision.score,
        "reasons": json.dumps(list(decision.reasons)),
        "version": decision.version,
        "created_at": created_at,
        "facts": json.dumps(facts_to_json(facts)) if facts is not None else None,
        "rule_results": json.dumps([r.as_json() for r in decision.results]),
        "rules_hash": decision.rules_hash or None,
        "risk": json.dumps(risk if risk is not None else decision.as_json()),
    }
    if review == "open":
        values["review_mode"] = decision.review_mode
    if alerts:
        values["alerts"] = json.dumps(alerts)
    statement = _record_statement(kind, review if kind == "deposit" else None, bool(alerts))
    await session.execute(statement, values)


async def get_decision(session: AsyncSession, *, payment_id: str) -> FraudDecision | None:
    return await session.get(FraudDecision, payment_id)


_LOCK_SUBJECTS = text(
    # One round trip; the locks are taken in the order the sort gives the aggregate.
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM ("
    "SELECT o, k FROM (SELECT 0 AS o, 'fraud:person:' || coalesce("
    "(SELECT person_id FROM players WHERE id = :player_id), :player_id) AS k "
    "UNION ALL SELECT 1, k FROM unnest(CAST(:keys AS text[])) k) subjects ORDER BY o, k) ordered"
)


async def lock_subjects(session: AsyncSession, *, player_id: str, signals: Signals) -> None:
    """Serialize decisions about one person, card or device until this transaction ends.

    The person first, then the card and the device in a fixed order: two transactions never
    wait for each other in a cycle. One statement, before the facts are read (a statement sees
    what was committed when it began: the facts must come after the locks, never with them).
    """
    keys = [
        f"fraud:{name}:{value}"
        for name, value in (("card", signals.card_key), ("device", signals.device_id))
        if value is not None
    ]
    await session.execute(_LOCK_SUBJECTS, {"player_id": player_id, "keys": keys})
