"""Fact gathering against PostgreSQL: each fact from real rows, the indexes the query uses, and
the monitoring checks."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import deposits as deposit_store
from db import fraud as fraud_store
from db import ledger as ledger_store
from db import monitoring
from db import players as player_store
from db import responsible_gaming as rg
from db import withdrawals as withdrawal_store
from db.ledger_check import CHECKS
from db.models import PaymentAttempt
from domain.fraud import Decision, evaluate
from domain.fraud.config import DEFAULT_RULES_PATH, load_rule_set
from domain.ledger import deposit_credit, game_transaction
from domain.risk import RiskVerdict
from domain.withdrawals import destination_fingerprint
from tests.conftest import make_iin

RULES = load_rule_set(DEFAULT_RULES_PATH)
NOW = datetime.now(UTC)
APPROVED = Decision(RiskVerdict.APPROVE, 0, (), "t")


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def player(
    session: AsyncSession,
    birth: str = "900101",
    name: str = "Aigerim Tulegenova",
    *,
    iin: str | None = None,
) -> str:
    player_id = f"pl_{uid()}"
    await player_store.create_player(
        session,
        player_id=player_id,
        external_id=f"ext-{uid()}",
        iin=iin or make_iin(birth),
        full_name=name,
        birth_date=datetime.strptime(birth, "%y%m%d").replace(year=1900 + int(birth[:2])).date(),
        phone="+77011234567",
        email=None,
    )
    return player_id


async def decided(
    session: AsyncSession,
    player_id: str,
    *,
    kind: str = "deposit",
    amount: int = 100_000,
    at: datetime = NOW - timedelta(minutes=1),
    signals: fraud_store.Signals | None = None,
    decision: Decision = APPROVED,
) -> str:
    payment_id = f"{'dep' if kind == 'deposit' else 'wd'}_{uid()}"
    await fraud_store.record_decision(
        session,
        payment_id=payment_id,
        kind=kind,  # type: ignore[arg-type]
        player_id=player_id,
        amount_minor=amount,
        currency="KZT",
        method="card",
        signals=signals or fraud_store.Signals(),
        decision=decision,
        created_at=at,
    )
    return payment_id


async def deposit_row(
    session: AsyncSession, player_id: str, *, amount: int, status: str, card: dict[str, Any] | None
) -> str:
    deposit_id = f"dep_{uid()}"
    await deposit_store.create_deposit(
        session,
        deposit_id=deposit_id,
        player_id=player_id,
        amount_minor=amount,
        currency="KZT",
        method="card",
        provider="halyk",
        card=card,
        client=None,
        workflow_id=f"deposit-{deposit_id}",
        created_at=NOW - timedelta(minutes=5),
    )
    await session.execute(
        text("UPDATE deposits SET status = :s, status_reason = :r WHERE id = :id"),
        {"s": status, "r": "provider_declined:x" if status == "failed" else None, "id": deposit_id},
    )
    return deposit_id


async def deposit_facts(
    session: AsyncSession, player_id: str, signals: fraud_store.Signals, amount: int = 100_000
) -> Any:
    return await fraud_store.deposit_facts(
        session,
        deposit_id="dep_new",
        player_id=player_id,
        amount_minor=amount,
        currency="KZT",
        method="card",
        signals=signals,
        rules=RULES,
        now=NOW,
    )


async def test_velocity_per_player_card_device_and_ip(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    card, device, ip = f"411111:{uid()[:4]}", f"dev-{uid()}", f"2.133.{uuid.uuid4().int % 250}.9"
    shared = fraud_store.Signals(card_key=card, device_id=device, ip=ip, ip_country="KZ")
    async with sessions.begin() as session:
        me, other = await player(session), await player(session)
        await decided(session, me, signals=shared)
        await decided(session, me, signals=shared, at=NOW - timedelta(minutes=30))
        await decided(session, other, signals=shared, at=NOW - timedelta(hours=5), amount=7)
        await decided(session, other, signals=shared, at=NOW - timedelta(hours=30))  # too old
        declined = Decision(RiskVerdict.DECLINE, 100, ("x",), "t")
        await decided(session, me, signals=shared, decision=declined, amount=1_000)
        facts = await deposit_facts(session, me, shared)
    player_v = facts.velocity["player"]
    # An attempt the engine itself declined is neither counted nor summed (issue 18): a device
    # the engine blocked is not kept blocked by its own declines.
    assert (player_v.w10m.count, player_v.w1h.count, player_v.w24h.count) == (1, 2, 2)
    assert player_v.w24h.sum_minor == 200_000
    for dimension in ("card", "device", "ip"):
        v = facts.velocity[dimension]
        assert (v.w10m.count, v.w24h.count, v.w24h.sum_minor) == (1, 3, 200_007)
    assert "destination" not in facts.velocity


async def test_identities_sharing_a_device_are_distinct_iins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    device = fraud_store.Signals(device_id=f"dev-{uid()}", card_key=f"555555:{uid()[:4]}")
    async with sessions.begin() as session:
        me = await player(session)
        same_person_elsewhere = await player(  # same IIN: another account of the person
            session,
            iin=(await player_store.get_player(session, player_id=me)).iin,  # type: ignore[union-attr]
        )
        stranger1, stranger2 = await player(session, "850505"), await player(session, "880808")
        for who in (me, same_person_elsewhere, stranger1):
            await decided(session, who, signals=device)
        await decided(session, stranger2, signals=device, at=NOW - timedelta(days=40))  # too old
        facts = await deposit_facts(session, me, device)
    assert facts.other_identities == {"device": 1, "card": 1}
    decision = evaluate(facts, RULES)
    assert "multi_account_card" in decision.reasons  # one other person on this card
    assert "multi_account_device" not in decision.reasons  # a device may be shared by two


async def test_small_declined_deposits_count_as_card_testing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    device = fraud_store.Signals(device_id=f"dev-{uid()}")
    async with sessions.begin() as session:
        me = await player(session)
        for status, amount in [("failed", 100_00), ("failed", 200_00), ("succeeded", 100_00)]:
            deposit_id = await deposit_row(session, me, amount=amount, status=status, card=None)
            await fraud_store.record_decision(
                session,
                payment_id=deposit_id,
                kind="deposit",
                player_id=me,
                amount_minor=amount,
                currency="KZT",
                method="card",
                signals=device,
                decision=APPROVED,
                created_at=NOW - timedelta(minutes=5),
            )
        big = await deposit_row(session, me, amount=900_000_00, status="failed", card=None)
        await decided(session, me, signals=device)  # no deposit row: not a decline
        facts = await deposit_facts(session, me, device)
        assert big
    assert facts.small_declines_1h == {"player": 2, "device": 2}
    assert "card_testing" not in evaluate(facts, RULES).reasons  # 2 < 3
    async with sessions.begin() as session:
        extra = await deposit_row(session, me, amount=50_00, status="failed", card=None)
        await fraud_store.record_decision(
            session,
            payment_id=extra,
            kind="deposit",
            player_id=me,
            amount_minor=50_00,
            currency="KZT",
            method="card",
            signals=device,
            decision=APPROVED,
            created_at=NOW - timedelta(minutes=2),
        )
        facts = await deposit_facts(session, me, device)
    assert "card_testing" in evaluate(facts, RULES).reasons


async def test_responsible_gaming_facts(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        me = await player(session)
        await deposit_row(session, me, amount=400_000, status="succeeded", card=None)
        await deposit_row(session, me, amount=900_000, status="failed", card=None)
        await rg.set_limit(
            session, player_id=me, period="daily", amount_minor=500_000, currency="KZT", now=NOW
        )
        facts = await deposit_facts(session, me, fraud_store.Signals(), amount=100_001)
        assert [(u.period, u.limit_minor, u.used_minor) for u in facts.deposit_limits] == [
            ("daily", 500_000, 400_000)
        ]
        # No device or IP came with it: the missing signals score too (issue 18).
        missing = ("missing_device", "missing_ip")
        assert evaluate(facts, RULES).reasons == ("deposit_limit_exceeded", *missing)
        assert facts.missing_signals == ("device", "ip")
        assert not facts.self_excluded
        await rg.self_exclude(session, player_id=me, until=NOW + timedelta(days=1), reason=None)
        facts = await deposit_facts(session, me, fraud_store.Signals(), amount=100_000)
    assert facts.self_excluded
    assert evaluate(facts, RULES).reasons == ("self_excluded", *missing)


async def test_withdrawal_facts_cycling_destination_device_and_ip(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        me = await player(session)
        other = await player(session, "770707", name="Ivan Petrov")
        await ledger_store.post_transaction(
            session,
            spec=deposit_credit(
                deposit_id=f"dep_{uid()}",
                player_id=me,
                provider="halyk",
                amount_minor=1_000_000_00,
                currency="KZT",
            ),
        )
        await ledger_store.post_transaction(
            session,
            spec=game_transaction(
                player_id=me, round_id=uid(), type="bet", amount_minor=100_000_00, currency="KZT"
            ),
        )
        card = {"bin": "440563", "last4": uid()[:4]}
        iban = destination_fingerprint("bank_transfer", f"KZ00{uid()}")
        await decided(
            session,
            me,
            at=NOW - timedelta(days=3),
            signals=fraud_store.Signals(device_id="dev-home", ip="2.133.0.1", ip_country="KZ"),
        )
        await decided(
            session, other, kind="withdrawal", signals=fraud_store.Signals(destination_key=iban)
        )
        facts, signals = await fraud_store.withdrawal_facts(
            session,
            player_id=me,
            amount_minor=500_000_00,
            currency="KZT",
            method="card",
            destination_fingerprint=iban,
            rules=RULES,
            now=NOW,
            destination_name="IVAN PETROV",
            card=card,
            client={"ip": "5.3.1.1", "device_id": "dev-new"},
        )
    assert (facts.deposits_lookback_minor, facts.bets_lookback_minor) == (1_000_000_00, 100_000_00)
    assert facts.other_identities["destination"] == 1
    assert (facts.device_known, facts.ip_country, facts.previous_ip_country) == (False, "RU", "KZ")
    assert facts.destination_name_matches is False
    assert facts.destination_card_deposited is False
    assert signals.destination_key == iban
    decision = evaluate(facts, RULES)
    assert decision.decision is RiskVerdict.DECLINE
    assert set(decision.reasons) >= {
        "low_turnover",
        "multi_account_destination",
        "destination_name_mismatch",
        "card_not_used_for_deposit",
        "new_device_large_amount",
        "ip_country_change_large_amount",
        "ip_country_not_allowed",
    }

    async with sessions.begin() as session:
        for _ in range(9):
            await ledger_store.post_transaction(
                session,
                spec=game_transaction(
                    player_id=me,
                    round_id=uid(),
                    type="bet",
                    amount_minor=100_000_00,
                    currency="KZT",
                ),
            )
        home = destination_fingerprint("bank_transfer", f"KZ00{uid()}")
        await paid_withdrawal(session, me, destination_key=home)
        facts, _ = await fraud_store.withdrawal_facts(
            session,
            player_id=me,
            amount_minor=400_000_00,
            currency="KZT",
            method="bank_transfer",
            destination_fingerprint=home,
            rules=RULES,
            now=NOW,
            destination_iin=(await player_store.get_player(session, player_id=me)).iin,  # type: ignore[union-attr]
            client={"ip": "2.134.0.1", "device_id": "dev-home"},
        )
        elsewhere, _ = await fraud_store.withdrawal_facts(
            session,
            player_id=me,
            amount_minor=400_000_00,
            currency="KZT",
            method="bank_transfer",
            destination_fingerprint=destination_fingerprint("bank_transfer", f"KZ00{uid()}"),
            rules=RULES,
            now=NOW,
        )
    assert facts.bets_lookback_minor == 1_000_000_00
    assert (facts.device_known, facts.destination_name_matches) == (True, True)
    assert facts.destination_used_before is True
    assert evaluate(facts, RULES).reasons == ()
    assert elsewhere.destination_used_before is False
    assert evaluate(elsewhere, RULES).reasons == ("new_payout_destination",)


async def paid_withdrawal(session: AsyncSession, player_id: str, *, destination_key: str) -> str:
    """A withdrawal paid out to `destination_key` two days ago, with its fraud decision."""
    withdrawal_id = f"wd_{uid()}"
    at = NOW - timedelta(days=2)
    created = await withdrawal_store.create_withdrawal(
        session,
        withdrawal_id=withdrawal_id,
        player_id=player_id,
        amount_minor=10_000_00,
        currency="KZT",
        method="bank_transfer",
        destination={"iban": "KZ.."},
        destination_fingerprint=destination_key[:32],
        provider="halyk",
        approvals_needed=1,
        workflow_id=f"withdrawal-{withdrawal_id}",
        created_at=at,
    )
    created.status = "paid"
    await fraud_store.record_decision(
        session,
        payment_id=withdrawal_id,
        kind="withdrawal",
        player_id=player_id,
        amount_minor=10_000_00,
        currency="KZT",
        method="bank_transfer",
        signals=fraud_store.Signals(destination_key=destination_key),
        decision=APPROVED,
        created_at=at,
    )
    await session.flush()
    return withdrawal_id


async def test_fact_query_reads_through_indexes(sessions: async_sessionmaker[AsyncSession]) -> None:
    """With sequential scans priced out, every table the query touches has an index path."""
    signals = fraud_store.Signals(
        card_key="440563:1234", device_id="d", ip="2.133.0.1", ip_country="KZ", destination_key="x"
    )
    kinds: tuple[Literal["deposit", "withdrawal"], ...] = ("deposit", "withdrawal")
    for kind in kinds:
        query = fraud_store.build_query(
            kind=kind,
            payment_id="p",
            player_id="pl_x",
            currency="KZT",
            signals=signals,
            rules=RULES,
            now=NOW,
            card_for_payout=True,
        )
        async with sessions.begin() as session:
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in (await session.execute(text("EXPLAIN " + query.sql), query.params)).all()
            )
        assert "Seq Scan" not in plan, plan
        for index in ("ix_fraud_decisions_player", "ix_fraud_decisions_device_id"):
            assert index in plan


async def test_monitoring_raises_each_alert_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    provider = f"prov-{uid()}"
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        for n in range(12):
            session.add(
                PaymentAttempt(
                    payment_id=f"dep_{uid()}",
                    step="charge",
                    attempt_no=1,
                    provider=provider,
                    outcome="succeeded" if n < 6 else "error",
                    latency_ms=5_000,
                    created_at=now - timedelta(minutes=1),
                )
            )
        heavy = await player(session)
        for _ in range(41):
            await decided(session, heavy, at=now - timedelta(minutes=2))
        for _ in range(5):
            deposit_id = await deposit_row(
                session, heavy, amount=100_00, status="processing", card=None
            )
            await session.execute(
                text("UPDATE deposits SET updated_at = :t WHERE id = :id"),
                {"t": now - timedelta(hours=1), "id": deposit_id},
            )
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(
            session, now=now, thresholds=monitoring.MonitorThresholds(), rules=RULES
        )
    kinds = {key.split(":")[0] for key in raised}
    assert {
        "provider_approval_low",
        "provider_latency_high",
        "payments_stuck",
        "player_pattern",
    } <= kinds
    assert any(key.startswith(f"player_pattern:{heavy}:") for key in raised)
    assert any(provider in key for key in raised)
    async with sessions.begin() as session:
        again = await monitoring.run_checks(
            session, now=now, thresholds=monitoring.MonitorThresholds(), rules=RULES
        )
    assert not any(provider in key or heavy in key for key in again)


# The invariant checker's own recomputation of the totals from the entries.
_RECOMPUTED_TOTALS = CHECKS["per-day wallet totals equal the entries"]


async def test_wallet_daily_totals_follow_every_posting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ledger_post (migration 0070) keeps the cycling rule's per-day totals equal to the ledger,
    through single postings, group-committed batches, wins (not counted) and replays."""
    async with sessions.begin() as session:
        me = await player(session)
    deposit = deposit_credit(
        deposit_id=f"dep_{uid()}",
        player_id=me,
        provider="halyk",
        amount_minor=300_000_00,
        currency="KZT",
    )
    await ledger_store.post(sessions, deposit)
    await ledger_store.post(sessions, deposit)  # a replay posts nothing
    round_id = uid()
    for kind in ("bet", "win"):
        await ledger_store.post(
            sessions,
            game_transaction(
                player_id=me, round_id=round_id, type=kind, amount_minor=70_000_00, currency="KZT"
            ),
        )
    batcher = ledger_store.LedgerBatcher(sessions, max_batch=8, parallel=2)
    bets = [
        game_transaction(
            player_id=me, round_id=uid(), type="bet", amount_minor=1_000_00, currency="KZT"
        )
        for _ in range(10)
    ]
    await asyncio.gather(*(batcher.post(bet) for bet in bets))
    async with sessions() as session:
        facts, _ = await fraud_store.withdrawal_facts(
            session,
            player_id=me,
            amount_minor=10_000_00,
            currency="KZT",
            method="bank_transfer",
            destination_fingerprint=destination_fingerprint("bank_transfer", f"KZ00{uid()}"),
            rules=RULES,
            now=datetime.now(UTC),
        )
        mismatched = (await session.execute(text(_RECOMPUTED_TOTALS))).all()
    assert (facts.deposits_lookback_minor, facts.bets_lookback_minor) == (300_000_00, 80_000_00)
    assert mismatched == []


async def test_every_list_kind_is_found_and_expired_or_removed_entries_are_not(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Issue 18, lists: entries name an IIN, a card (its fingerprint), a device, an IP range, an
    IBAN, a phone or a wallet account; the facts carry the live entries the payment matches,
    never one that expired or was removed."""
    from db import risk as risk_store

    tag = uid()
    iin = make_iin()
    octets = uuid.uuid4().int
    network = f"100.{64 + octets % 64}.{(octets >> 8) % 256}.0/24"
    values: dict[str, str] = {
        "iin": iin,
        "card": f"fp-{tag}",
        "device": f"dev-{tag}",
        "ip": network,
        "iban": f"KZ{octets % 10**18:018d}",
        "phone": f"+7701{octets % 10**7:07d}",
        "wallet": f"wallet-{tag}",
    }
    at = NOW - timedelta(minutes=5)
    entries: dict[str, int] = {}
    async with sessions.begin() as session:
        player_id = await player(session, iin=iin)
        for kind, value in values.items():
            entry = await risk_store.add_entry(
                session,
                list_type="allow" if kind == "iin" else "block",
                kind=kind,  # type: ignore[arg-type]
                value=value,
                network=value if kind == "ip" else None,
                reason="test",
                actor="op_test",
                expires_at=None,
                now=at,
            )
            entries[kind] = entry.id
        expired = await risk_store.add_entry(
            session,
            list_type="block",
            kind="device",
            value=f"old-{tag}",
            network=None,
            reason="test",
            actor="op_test",
            expires_at=NOW - timedelta(seconds=1),
            now=at,
        )
        removed = await risk_store.add_entry(
            session,
            list_type="block",
            kind="phone",
            value=f"+7702{octets % 10**7:07d}",
            network=None,
            reason="test",
            actor="op_test",
            expires_at=None,
            now=at,
        )
        await risk_store.remove_entry(
            session, entry_id=removed.id, actor="op_test", reason="false positive", now=at
        )

    def hits(facts: Any) -> set[tuple[str, str, int]]:
        return {(h.list_type, h.kind, h.entry_id) for h in facts.list_hits}

    async with sessions() as session:
        deposit = await fraud_store.deposit_facts(
            session,
            deposit_id=f"dep_{uid()}",
            player_id=player_id,
            amount_minor=100_000,
            currency="KZT",
            method="ewallet",
            signals=fraud_store.Signals.of(
                card={"fingerprint": values["card"], "bin": "440563", "last4": "0001"},
                client={"device_id": values["device"], "ip": network.replace(".0/24", ".77")},
                account={"phone": values["phone"], "wallet_account": values["wallet"]},
            ),
            rules=RULES,
            now=NOW,
        )
        assert hits(deposit) == {
            ("allow", "iin", entries["iin"]),
            *(("block", k, entries[k]) for k in ("card", "device", "ip", "phone", "wallet")),
        }
        payout, _ = await fraud_store.withdrawal_facts(
            session,
            player_id=player_id,
            amount_minor=100_000,
            currency="KZT",
            method="bank_transfer",
            destination_fingerprint=destination_fingerprint("bank_transfer", values["iban"]),
            rules=RULES,
            now=NOW,
            account={"iban": values["iban"]},
        )
        iban_hit = ("block", "iban", entries["iban"])
        assert hits(payout) == {("allow", "iin", entries["iin"]), iban_hit}
        neither = await fraud_store.deposit_facts(
            session,
            deposit_id=f"dep_{uid()}",
            player_id=player_id,
            amount_minor=100_000,
            currency="KZT",
            method="mobile_banking",
            signals=fraud_store.Signals.of(
                client={"device_id": f"old-{tag}", "ip": "192.0.2.1"},
                account={"phone": f"+7702{octets % 10**7:07d}"},
            ),
            rules=RULES,
            now=NOW,
        )
        assert hits(neither) == {("allow", "iin", entries["iin"])}, (expired.id, removed.id)
