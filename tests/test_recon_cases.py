"""Reconciliation cases and chargebacks over the API: each resolution action as a ledger posting
with its actor and note, four eyes, refusals (wrong action for the kind, a resolved case), and a
chargeback on an empty wallet (a receivable, a risk flag) and its reversal.

A case is set up as the reconciliation leaves it: its row in `recon_cases` and its money parked
in the provider's reconciliation-difference account (the day's settlement sweeps clearing there,
against the operator's bank account), so that a resolution's posting can be checked to empty
that account again."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from config import Settings
from db import ledger as ledger_store
from db.recon_cases import charge_reported_chargebacks, get_case
from db.risk_flags import active_flags, all_flags
from domain.iban import with_check_digits
from domain.ledger import (
    Entry,
    Side,
    TransactionSpec,
    deposit_credit,
    fee_for,
    game_transaction,
    operator_bank,
    player_receivable,
    player_wallet,
    provider_clearing,
    recon_difference,
    recon_write_off,
)
from domain.roles import Role
from domain.routing import ProviderRule
from tests.approval_helpers import person_key
from tests.conftest import _client, _result, card_deposit, deposit_and_wait, new_player
from tests.ledger_helpers import assert_invariants
from tests.test_recon_engine import FEE_BPS, Book, Report, reconcile, settled_through

pytestmark = pytest.mark.asyncio


# -- setting up what the reconciliation leaves ------------------------------------------------


def _day() -> date:
    """A business day of its own per test, so that filters see only the test's cases."""
    return date.fromordinal(date(2024, 1, 1).toordinal() + uuid.uuid4().int % 300)


async def open_case(
    sessions: async_sessionmaker[AsyncSession],
    *,
    provider: str,
    kind: str,
    amount: int,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
    business_date: date | None = None,
    park: int | None = None,
) -> int:
    """A case as the reconciliation opens it, and its money `park`ed in the difference account
    (positive: received and not booked, a credit there)."""
    day = business_date or _day()
    async with sessions.begin() as session:
        case_id = await session.scalar(
            text(
                "INSERT INTO recon_cases (provider, business_date, kind, reference, line_key, "
                "amount_minor, currency, details) VALUES (:p, :d, :k, :r, :lk, :a, 'KZT', "
                "CAST(:details AS jsonb)) RETURNING id"
            ),
            {
                "p": provider,
                "d": day,
                "k": kind,
                "r": reference,
                "lk": uuid.uuid4().hex,
                "a": amount,
                "details": json.dumps(details or {}),
            },
        )
    if park:
        await park_money(sessions, provider=provider, held=park)
    assert isinstance(case_id, int)
    return case_id


async def park_money(
    sessions: async_sessionmaker[AsyncSession], *, provider: str, held: int
) -> None:
    """What a day's settlement does with money no match explains: into the difference account."""
    bank, difference = operator_bank("KZT"), recon_difference(provider, "KZT")
    debit, credit = (bank, difference) if held > 0 else (difference, bank)
    await ledger_store.post(
        sessions,
        TransactionSpec(
            key=f"test:settlement:{uuid.uuid4().hex}",
            kind="recon_settlement",
            payment_id=None,
            entries=(Entry(debit, Side.DEBIT, abs(held)), Entry(credit, Side.CREDIT, abs(held))),
        ),
    )


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    """Posted debits minus credits (0 for an account never posted to)."""
    async with sessions() as session:
        value = await session.scalar(
            text("SELECT posted_debits - posted_credits FROM ledger_accounts WHERE code = :c"),
            {"c": code},
        )
    return int(value or 0)


async def add_deposit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    player: str,
    provider: str,
    amount: int,
    status: str = "expired",
    credited: bool = False,
) -> str:
    deposit_id = f"dep_{uuid.uuid4().hex[:24]}"
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, "
                "provider, workflow_id) VALUES (:id, :player, :amount, 'KZT', :method, :status, "
                ":provider, :wf)"
            ),
            {
                "id": deposit_id,
                "player": player,
                "amount": amount,
                "method": "bank_transfer" if provider == "kazbank" else "card",
                "status": status,
                "provider": provider,
                "wf": f"deposit-{deposit_id}",
            },
        )
    if credited:
        await ledger_store.post(
            sessions,
            deposit_credit(
                deposit_id=deposit_id,
                player_id=player,
                provider=provider,
                amount_minor=amount,
                currency="KZT",
            ),
        )
    return deposit_id


def provider_name() -> str:
    return f"testpsp_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def second_operator(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with sessions.begin() as session:
        issued = await person_key(session, "second operator")  # another person
    async with _client(app, issued.secret) as client:
        yield client


async def resolve(
    client: httpx.AsyncClient, case_id: int, action: str, note: str = "checked", **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/recon/cases/{case_id}/resolve", json={"action": action, "note": note, **extra}
    )


# -- listing ---------------------------------------------------------------------------------


async def test_cases_are_listed_newest_first_by_filter_in_keyset_pages(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider, day = provider_name(), _day()
    ids = [
        await open_case(
            sessions, provider=provider, kind=kind, amount=100_00 * (n + 1), business_date=day
        )
        for n, kind in enumerate(["missing_ours", "unknown_reference", "missing_ours"])
    ]
    first = await operator_api.get(
        "/v1/recon/cases", params={"provider": provider, "status": "open", "limit": 2}
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [c["id"] for c in page["data"]] == [ids[2], ids[1]]
    rest = await operator_api.get(
        "/v1/recon/cases",
        params={"provider": provider, "status": "open", "limit": 2, "cursor": page["next_cursor"]},
    )
    assert [c["id"] for c in rest.json()["data"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None

    by_kind = await operator_api.get(
        "/v1/recon/cases",
        params={"provider": provider, "date": day.isoformat(), "kind": "missing_ours"},
    )
    assert [c["id"] for c in by_kind.json()["data"]] == [ids[2], ids[0]]
    shown = await operator_api.get(f"/v1/recon/cases/{ids[1]}")
    assert shown.status_code == 200
    case = shown.json()
    assert case["allowed_actions"] == ["assign_player", "return_to_sender", "write_off"]
    assert (case["held_amount"], case["approvals_needed"], case["actions"]) == (200_00, 1, [])

    bad = await operator_api.get("/v1/recon/cases", params={"kind": "nonsense"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    missing = await operator_api.get("/v1/recon/cases/999999999")
    assert (missing.status_code, missing.json()["code"]) == (404, "case_not_found")


async def test_cases_need_an_operator_key(
    api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient
) -> None:
    assert (await anonymous_api.get("/v1/recon/cases")).status_code == 401
    assert (await api.get("/v1/recon/cases")).status_code == 403
    refused = await api.post("/v1/recon/cases/1/resolve", json={"action": "write_off", "note": "x"})
    assert refused.status_code == 403


# -- each action -----------------------------------------------------------------------------


async def test_credit_player_credits_a_late_deposit_with_its_own_posting(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Money that came for a deposit we gave up on reaches the player through the deposit's own
    credit: the deposit succeeds, and its late-payment workflow could never credit it again."""
    player = await new_player(api)
    provider = provider_name()
    deposit = await add_deposit(sessions, player=player, provider=provider, amount=7_500_00)
    case_id = await open_case(
        sessions,
        provider=provider,
        kind="late_payment",
        amount=7_500_00,
        reference=deposit,
        details={"line_kind": "transfer_in", "received": 7_500_00, "ordered": 7_500_00},
        park=7_500_00,
    )
    difference = recon_difference(provider, "KZT").code
    assert await balance(sessions, difference) == -7_500_00

    resolved = await resolve(operator_api, case_id, "credit_player", "paid late, confirmed")
    assert resolved.status_code == 200, resolved.text
    case = resolved.json()
    assert (case["status"], case["resolution"]) == ("resolved", "credit_player")
    keys = case["details"]["resolution"]["transaction_keys"]
    assert f"deposit:{deposit}:credit" in keys
    assert f"recon:case:{case_id}:credit" in keys
    assert [(a["step"], a["note"]) for a in case["actions"]] == [
        ("execute", "paid late, confirmed")
    ]
    assert case["actions"][0]["actor_name"] == "test operator"
    assert await balance(sessions, difference) == 0
    assert await balance(sessions, player_wallet(player, "KZT").code) == -7_500_00
    shown = await api.get(f"/v1/deposits/{deposit}")
    assert shown.json()["status"] == "succeeded"

    again = await resolve(operator_api, case_id, "credit_player")
    assert (again.status_code, again.json()["code"]) == (409, "case_resolved")
    assert again.headers["content-type"].startswith("application/problem+json")
    await assert_invariants(sessions)


async def test_credit_player_of_an_over_payment_credits_the_excess(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    provider = provider_name()
    deposit = await add_deposit(
        sessions, player=player, provider=provider, amount=5_000_00, credited=True
    )
    case_id = await open_case(
        sessions,
        provider=provider,
        kind="over_payment",
        amount=5_300_00,
        reference=deposit,
        details={"line_kind": "transfer_in", "received": 5_300_00, "credited": 5_000_00},
        park=300_00,
    )
    wrong = await resolve(operator_api, case_id, "credit_player", amount=5_300_00)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_amount")
    resolved = await resolve(operator_api, case_id, "credit_player", amount=300_00)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["details"]["resolution"]["transaction_keys"] == [
        f"recon:case:{case_id}:credit"
    ]
    assert await balance(sessions, player_wallet(player, "KZT").code) == -5_300_00
    assert await balance(sessions, recon_difference(provider, "KZT").code) == 0
    await assert_invariants(sessions)


async def test_assign_player_credits_an_unknown_transfer_to_the_named_player(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    provider = provider_name()
    case_id = await open_case(
        sessions,
        provider=provider,
        kind="unknown_reference",
        amount=1_234_56,
        details={"line_kind": "transfer_in", "purpose": "for my account pls"},
        park=1_234_56,
    )
    nobody = await resolve(operator_api, case_id, "assign_player")
    assert (nobody.status_code, nobody.json()["code"]) == (422, "player_required")
    ghost = await resolve(operator_api, case_id, "assign_player", player_id="pl_nobody")
    assert (ghost.status_code, ghost.json()["code"]) == (422, "player_not_found")
    wrong_kind = await resolve(operator_api, case_id, "refund")
    assert (wrong_kind.status_code, wrong_kind.json()["code"]) == (422, "invalid_action")

    resolved = await resolve(
        operator_api, case_id, "assign_player", "IIN in the purpose", player_id=player
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["details"]["resolution"]["player_id"] == player
    assert await balance(sessions, player_wallet(player, "KZT").code) == -1_234_56
    assert await balance(sessions, recon_difference(provider, "KZT").code) == 0
    await assert_invariants(sessions)


async def test_write_off_moves_either_way_to_the_write_off_account(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    written_off = recon_write_off("KZT").code
    before = await balance(sessions, written_off)
    # We credited a deposit the provider never had: the difference holds a debit.
    missing = await open_case(
        sessions,
        provider=provider,
        kind="missing_provider",
        amount=900_00,
        reference=f"dep_{uuid.uuid4().hex[:12]}",
        details={"our_kind": "deposit"},
        park=-900_00,
    )
    shown = (await operator_api.get(f"/v1/recon/cases/{missing}")).json()
    assert (shown["held_amount"], shown["allowed_actions"]) == (-900_00, ["write_off"])
    refused = await resolve(operator_api, missing, "credit_player")
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_action")
    assert (
        await resolve(operator_api, missing, "write_off", "provider lost it")
    ).status_code == 200
    assert await balance(sessions, written_off) == before + 900_00

    # Money nobody claims: written off as a gain.
    unknown = await open_case(
        sessions, provider=provider, kind="unknown_reference", amount=400_00, park=400_00
    )
    assert (await resolve(operator_api, unknown, "write_off", "unclaimed")).status_code == 200
    assert await balance(sessions, written_off) == before + 500_00
    assert await balance(sessions, recon_difference(provider, "KZT").code) == 0
    await assert_invariants(sessions)


async def test_a_fee_difference_is_acknowledged_without_a_posting(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    case_id = await open_case(
        sessions,
        provider=provider_name(),
        kind="fee_mismatch",
        amount=10_000_00,
        details={"line_kind": "payment", "expected_fee": 150_00, "fee": 160_00, "delta": 10_00},
    )
    assert (await operator_api.get(f"/v1/recon/cases/{case_id}")).json()["allowed_actions"] == [
        "acknowledge"
    ]
    wrong = await resolve(operator_api, case_id, "write_off")
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_action")
    done = await resolve(operator_api, case_id, "acknowledge", "new tariff since the 1st")
    assert done.status_code == 200, done.text
    assert done.json()["details"]["resolution"]["transaction_keys"] == []


async def test_refund_at_the_provider_resolves_once_the_provider_refunds(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
) -> None:
    """The provider took a payment twice: the second is refunded through its connector by
    RefundWorkflow (a child of the case's workflow), out of the difference account."""
    player = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player, 300_000))
    assert deposit["status"] == "succeeded", deposit
    provider = deposit["provider"]
    case_id = await open_case(
        sessions,
        provider=provider,
        kind="duplicate",
        amount=300_000,
        reference=deposit["id"],
        details={"line_kind": "payment", "occurrence": 1},
        park=300_000,
    )
    difference = recon_difference(provider, "KZT").code
    before = await balance(sessions, difference)
    started = await resolve(operator_api, case_id, "refund", "charged twice")
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "resolving"
    twice = await resolve(operator_api, case_id, "write_off")
    assert (twice.status_code, twice.json()["code"]) == (409, "case_resolving")

    await _result(temporal_client.get_workflow_handle(f"recon-case-{case_id}"))
    case = (await operator_api.get(f"/v1/recon/cases/{case_id}")).json()
    assert (case["status"], case["resolution"]) == ("resolved", "refund")
    assert [a["step"] for a in case["actions"]] == ["execute", "settled"]
    refund_id = case["details"]["resolution"]["refund_id"]
    refunds = (await operator_api.get(f"/v1/deposits/{deposit['id']}/refunds")).json()["data"]
    assert [(r["id"], r["status"]) for r in refunds] == [(refund_id, "succeeded")]
    assert await balance(sessions, difference) == before + 300_000
    async with sessions() as session:
        keys = await ledger_store.transactions_for_payment(session, payment_id=deposit["id"])
    assert f"refund:{refund_id}:post" in keys
    await assert_invariants(sessions)


async def test_refund_needs_a_deposit_at_a_provider_that_refunds(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    no_deposit = await open_case(
        sessions,
        provider="halyk",
        kind="missing_ours",
        amount=100_00,
        reference="dep_unknown",
        details={"line_kind": "payment", "cause": "unknown"},
    )
    refused = await resolve(operator_api, no_deposit, "refund")
    assert (refused.status_code, refused.json()["code"]) == (422, "refund_not_possible")
    player = await new_player(api)
    deposit = await add_deposit(sessions, player=player, provider="kazbank", amount=100_00)
    bank = await open_case(
        sessions,
        provider="kazbank",
        kind="late_payment",
        amount=100_00,
        reference=deposit,
        details={"line_kind": "transfer_in", "received": 100_00},
    )
    no_refunds = await resolve(operator_api, bank, "refund")
    assert (no_refunds.status_code, no_refunds.json()["code"]) == (422, "refunds_not_supported")


async def test_return_to_sender_pays_the_transfer_back_through_the_bank(
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
) -> None:
    iban = with_check_digits(f"1230000{uuid.uuid4().int % 10**9:09d}")
    case_id = await open_case(
        sessions,
        provider="kazbank",
        kind="unknown_reference",
        amount=2_000_00,
        details={"line_kind": "transfer_in", "payer_iban": iban, "purpose": "???"},
        park=2_000_00,
    )
    difference = recon_difference("kazbank", "KZT").code
    before = await balance(sessions, difference)
    started = await resolve(operator_api, case_id, "return_to_sender", "nobody we know")
    assert started.status_code == 202, started.text
    await _result(temporal_client.get_workflow_handle(f"recon-case-{case_id}"))
    case = (await operator_api.get(f"/v1/recon/cases/{case_id}")).json()
    assert (case["status"], case["resolution"]) == ("resolved", "return_to_sender")
    reference = case["details"]["resolution"]["payout_reference"]
    assert case["details"]["resolution"]["iban"] == iban
    assert await balance(sessions, difference) == before + 2_000_00
    async with sessions() as session:
        kinds = (
            (
                await session.execute(
                    text("SELECT kind FROM ledger_transactions WHERE payment_id = :p ORDER BY id"),
                    {"p": reference},
                )
            )
            .scalars()
            .all()
        )
    assert kinds == ["recon_case_return_hold", "withdrawal_paid"]
    await assert_invariants(sessions)


async def test_a_return_the_bank_refuses_opens_the_case_again(
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
) -> None:
    closed = with_check_digits("123" + "999" + "0000000000")  # the simulator: account closed
    case_id = await open_case(
        sessions,
        provider="kazbank",
        kind="unknown_reference",
        amount=500_00,
        details={"line_kind": "transfer_in"},
        park=500_00,
    )
    missing_iban = await resolve(operator_api, case_id, "return_to_sender")
    assert (missing_iban.status_code, missing_iban.json()["code"]) == (422, "iban_required")
    bad_iban = await resolve(operator_api, case_id, "return_to_sender", iban="KZ00123")
    assert (bad_iban.status_code, bad_iban.json()["code"]) == (422, "invalid_iban")
    difference = recon_difference("kazbank", "KZT").code
    before = await balance(sessions, difference)
    started = await resolve(operator_api, case_id, "return_to_sender", "send back", iban=closed)
    assert started.status_code == 202, started.text
    await _result(temporal_client.get_workflow_handle(f"recon-case-{case_id}"))
    case = (await operator_api.get(f"/v1/recon/cases/{case_id}")).json()
    assert (case["status"], case["resolution"], case["approvals"]) == ("open", None, [])
    assert case["details"]["failed_resolutions"][0]["failed"].startswith("return_failed")
    assert [a["step"] for a in case["actions"]] == ["execute", "reopened"]
    assert await balance(sessions, difference) == before  # the hold was released
    # Open again: another resolution takes it.
    assert (await resolve(operator_api, case_id, "write_off", "account closed")).status_code == 200
    await assert_invariants(sessions)


# -- four eyes -------------------------------------------------------------------------------


async def test_four_eyes_above_the_configured_amount(
    operator_api: httpx.AsyncClient,
    second_operator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    provider = provider_name()
    big = settings.recon_four_eyes_from_minor
    case_id = await open_case(
        sessions, provider=provider, kind="unknown_reference", amount=big, park=big
    )
    first = await resolve(operator_api, case_id, "write_off", "nobody claims it")
    assert first.status_code == 202, first.text
    pending = first.json()
    assert (pending["status"], pending["approvals_needed"]) == ("open", 2)
    assert [a["operator_name"] for a in pending["approvals"]] == ["test operator"]
    assert await balance(sessions, recon_difference(provider, "KZT").code) == -big  # not yet

    same = await resolve(operator_api, case_id, "write_off", "really")
    assert (same.status_code, same.json()["code"]) == (409, "same_operator")
    other = await resolve(
        second_operator, case_id, "return_to_sender", iban=with_check_digits("1230000000000001")
    )
    assert (other.status_code, other.json()["code"]) == (409, "approval_mismatch")

    done = await resolve(second_operator, case_id, "write_off", "agreed")
    assert done.status_code == 200, done.text
    case = done.json()
    assert case["status"] == "resolved"
    assert len(case["details"]["resolution"]["approved_by"]) == 2
    assert [(a["step"], a["actor_name"]) for a in case["actions"]] == [
        ("approve", "test operator"),
        ("execute", "second operator"),
    ]
    assert await balance(sessions, recon_difference(provider, "KZT").code) == 0
    late = await resolve(operator_api, case_id, "write_off")
    assert (late.status_code, late.json()["code"]) == (409, "case_resolved")
    await assert_invariants(sessions)


async def test_below_the_amount_one_operator_resolves(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    amount = settings.recon_four_eyes_from_minor - 1
    case_id = await open_case(
        sessions, provider=provider_name(), kind="unknown_reference", amount=amount, park=amount
    )
    done = await resolve(operator_api, case_id, "write_off")
    assert done.status_code == 200, done.text
    assert done.json()["approvals_needed"] == 1


# -- chargebacks -----------------------------------------------------------------------------


async def _credited_deposit(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], amount: int
) -> tuple[str, str]:
    player = await new_player(api)
    deposit = await add_deposit(
        sessions,
        player=player,
        provider="halyk",
        amount=amount,
        status="succeeded",
        credited=True,
    )
    return player, deposit


async def _spend(sessions: async_sessionmaker[AsyncSession], player: str, amount: int) -> None:
    await ledger_store.post(
        sessions,
        game_transaction(
            player_id=player,
            round_id=uuid.uuid4().hex,
            type="bet",
            amount_minor=amount,
            currency="KZT",
        ),
    )


async def test_a_chargeback_on_an_empty_wallet_becomes_a_receivable_and_flags_the_player(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player, deposit = await _credited_deposit(api, sessions, 5_000_00)
    await _spend(sessions, player, 5_000_00)  # played it all away
    wallet, receivable = player_wallet(player, "KZT").code, player_receivable(player, "KZT").code
    clearing_before = await _clearing(sessions, "halyk")
    body = {
        "provider": "halyk",
        "provider_chargeback_id": f"CB-{uuid.uuid4().hex[:10]}",
        "deposit_id": deposit,
        "amount": 5_000_00,
        "currency": "KZT",
        "reason": "4837 no cardholder authorization",
    }
    created = await operator_api.post("/v1/recon/chargebacks", json=body)
    assert created.status_code == 201, created.text
    chargeback = created.json()
    assert (chargeback["from_wallet"], chargeback["receivable"]) == (0, 5_000_00)
    assert await balance(sessions, wallet) == 0  # never below zero
    assert await balance(sessions, receivable) == 5_000_00
    assert await _clearing(sessions, "halyk") == clearing_before - 5_000_00
    async with sessions() as session:
        flags = await active_flags(session, player_id=player)
        alerts = (
            await session.execute(
                text("SELECT kind, severity FROM alerts WHERE dedupe_key = :k"),
                {"k": f"chargeback:{chargeback['id']}"},
            )
        ).all()
    assert [(f.kind, f.source_ref) for f in flags] == [("chargeback", chargeback["id"])]
    assert [tuple(a) for a in alerts] == [("chargeback", "critical")]

    again = await operator_api.post("/v1/recon/chargebacks", json=body)
    assert (again.status_code, again.json()["id"]) == (200, chargeback["id"])
    other = await operator_api.post("/v1/recon/chargebacks", json={**body, "amount": 1_00})
    assert (other.status_code, other.json()["code"]) == (409, "chargeback_conflict")
    too_much = await operator_api.post(
        "/v1/recon/chargebacks",
        json={**body, "provider_chargeback_id": f"CB-{uuid.uuid4().hex[:10]}", "amount": 1_00},
    )
    assert (too_much.status_code, too_much.json()["code"]) == (422, "chargeback_exceeds_deposit")

    reversed_ = await operator_api.post(
        f"/v1/recon/chargebacks/{chargeback['id']}/reversal", json={"note": "dispute won"}
    )
    assert reversed_.status_code == 201, reversed_.text
    reversal = reversed_.json()["reversal"]
    assert (reversal["to_receivable"], reversal["to_wallet"]) == (5_000_00, 0)
    assert await balance(sessions, receivable) == 0
    assert await balance(sessions, wallet) == 0
    assert await _clearing(sessions, "halyk") == clearing_before
    twice = await operator_api.post(
        f"/v1/recon/chargebacks/{chargeback['id']}/reversal", json={"note": "again"}
    )
    assert twice.status_code == 200
    async with sessions() as session:
        assert await active_flags(session, player_id=player) == []
        assert [f.cleared_reason for f in await all_flags(session, player_id=player)] == [
            "chargeback reversed by " + chargeback["created_by"]
        ]
    await assert_invariants(sessions)


async def test_a_chargeback_takes_what_the_wallet_has_and_the_reversal_pays_the_debt_first(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player, deposit = await _credited_deposit(api, sessions, 5_000_00)
    await _spend(sessions, player, 3_000_00)  # 2,000.00 left
    wallet, receivable = player_wallet(player, "KZT").code, player_receivable(player, "KZT").code
    created = await operator_api.post(
        "/v1/recon/chargebacks",
        json={
            "provider": "halyk",
            "provider_chargeback_id": f"CB-{uuid.uuid4().hex[:10]}",
            "deposit_id": deposit,
            "amount": 5_000_00,
            "currency": "KZT",
        },
    )
    assert created.status_code == 201, created.text
    assert (created.json()["from_wallet"], created.json()["receivable"]) == (2_000_00, 3_000_00)
    assert (await balance(sessions, wallet), await balance(sessions, receivable)) == (0, 3_000_00)
    reversed_ = await operator_api.post(
        f"/v1/recon/chargebacks/{created.json()['id']}/reversal", json={"note": "won"}
    )
    reversal = reversed_.json()["reversal"]
    assert (reversal["to_receivable"], reversal["to_wallet"]) == (3_000_00, 2_000_00)
    assert (await balance(sessions, wallet), await balance(sessions, receivable)) == (-2_000_00, 0)
    await assert_invariants(sessions)


async def test_a_chargeback_must_name_a_credited_deposit_of_that_provider(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    never = await add_deposit(sessions, player=player, provider="halyk", amount=100_00)
    base = {"provider": "halyk", "amount": 100_00, "currency": "KZT"}
    for deposit, code in ((never, "deposit_not_credited"), ("dep_none", "deposit_not_found")):
        refused = await operator_api.post(
            "/v1/recon/chargebacks",
            json={**base, "deposit_id": deposit, "provider_chargeback_id": uuid.uuid4().hex},
        )
        assert (refused.status_code, refused.json()["code"]) == (422, code)
    elsewhere = await operator_api.post(
        "/v1/recon/chargebacks",
        json={**base, "provider": "freedom", "deposit_id": never, "provider_chargeback_id": "x1"},
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (422, "provider_mismatch")


async def test_chargeback_cases_from_a_report_charge_the_player_and_credit_the_reversal(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The report showed a chargeback before anyone told us: the settlement parked it in the
    difference account; charging the player takes it from there, and so does the reversal."""
    player, deposit = await _credited_deposit(api, sessions, 1_000_00)
    await _spend(sessions, player, 1_000_00)
    case_id = await open_case(
        sessions,
        provider="halyk",
        kind="chargeback",
        amount=1_000_00,
        reference=deposit,
        details={
            "line_kind": "chargeback",
            "provider_id": f"HCB{uuid.uuid4().hex[:8]}",
            "player_id": player,
            "deposit_id": deposit,
        },
        park=-1_000_00,
    )
    difference = recon_difference("halyk", "KZT").code
    before = await balance(sessions, difference)
    charged = await resolve(operator_api, case_id, "charge_player", "chargeback 4837")
    assert charged.status_code == 200, charged.text
    assert await balance(sessions, difference) == before - 1_000_00
    assert await balance(sessions, player_receivable(player, "KZT").code) == 1_000_00
    async with sessions() as session:
        assert [f.kind for f in await active_flags(session, player_id=player)] == ["chargeback"]

    reversal_case = await open_case(
        sessions,
        provider="halyk",
        kind="chargeback_reversal",
        amount=1_000_00,
        reference=deposit,
        details={"line_kind": "chargeback_reversal", "player_id": player, "deposit_id": deposit},
        park=1_000_00,
    )
    credited = await resolve(operator_api, reversal_case, "credit_player", "representment won")
    assert credited.status_code == 200, credited.text
    assert await balance(sessions, player_receivable(player, "KZT").code) == 0
    assert await balance(sessions, difference) == before - 1_000_00  # both cases' money is out
    await assert_invariants(sessions)


async def _clearing(sessions: async_sessionmaker[AsyncSession], provider: str) -> int:
    async with sessions() as session:
        value = await session.scalar(
            text(
                "SELECT coalesce(sum(posted_debits - posted_credits), 0) FROM ledger_accounts "
                "WHERE type = 'provider_clearing' AND owner_id = :o AND currency = 'KZT'"
            ),
            {"o": f"provider:{provider}"},
        )
    assert provider_clearing(provider, "KZT").owner_id == f"provider:{provider}"
    return int(value or 0)


async def test_the_reconciliation_charges_reported_chargebacks_without_an_operator(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`charge_reported_chargebacks`, for the engine after a run's settlement: a chargeback is
    a fact; only one it cannot take (a deposit never credited) waits for an operator."""
    player, deposit = await _credited_deposit(api, sessions, 800_00)
    never = await add_deposit(sessions, player=player, provider="halyk", amount=200_00)
    day = _day()
    async with sessions.begin() as session:
        report = await session.scalar(
            text(
                "INSERT INTO recon_reports (provider, business_date, content_hash, source, "
                "format, currency, net_settled_minor) VALUES ('halyk', :d, :h, 'uploaded', "
                "'test.csv', 'KZT', 0) RETURNING id"
            ),
            {"d": day, "h": uuid.uuid4().hex},
        )
        run = await session.scalar(
            text(
                "INSERT INTO recon_runs (provider, business_date, report_id, report_hash, "
                "currency) VALUES ('halyk', :d, :r, :h, 'KZT') RETURNING id"
            ),
            {"d": day, "r": report, "h": uuid.uuid4().hex},
        )
    cases = []
    for reference, amount in ((deposit, 800_00), (never, 200_00)):
        case_id = await open_case(
            sessions,
            provider="halyk",
            kind="chargeback",
            amount=amount,
            reference=reference,
            business_date=day,
            details={"line_kind": "chargeback", "provider_id": uuid.uuid4().hex[:12]},
            park=-amount,
        )
        async with sessions.begin() as session:
            await session.execute(
                text("UPDATE recon_cases SET run_id = :run WHERE id = :id"),
                {"run": run, "id": case_id},
            )
        cases.append(case_id)
    async with sessions.begin() as session:
        charged = await charge_reported_chargebacks(
            session, run_id=int(run), shards=8, now=datetime.now(UTC)
        )
    assert charged == [cases[0]]
    async with sessions() as session:
        first, second = [await get_case(session, case_id=c) for c in cases]
    assert first is not None
    assert second is not None
    assert (first.status, first.resolution, first.resolved_by) == (
        "resolved",
        "charge_player",
        "reconciliation",
    )
    assert second.status == "open"
    assert await balance(sessions, player_wallet(player, "KZT").code) == 0
    await assert_invariants(sessions)


# -- through the reconciliation engine -------------------------------------------------------

E2E_PROVIDER = "rc_cases"


@pytest.fixture(scope="module")
def e2e_settings(settings: Settings) -> Settings:
    """The session's settings with a provider of this module's own (off for routing)."""
    secret = SecretStr("recon-cases-e2e")
    return settings.model_copy(
        update={
            "providers": (*settings.providers, ProviderRule(E2E_PROVIDER, "card", enabled=False)),
            "provider_secrets": {**settings.provider_secrets, E2E_PROVIDER: secret},
            "webhook_secrets": {**settings.webhook_secrets, E2E_PROVIDER: secret},
        }
    )


@pytest.fixture(scope="module")
async def e2e_app(e2e_settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    application = create_app(e2e_settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


async def test_every_case_a_real_run_opens_resolves_and_empties_the_difference_account(
    e2e_app: FastAPI,
    api_keys: dict[Role, str],
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A provider's day through ReconciliationWorkflow: its settlement parks what matching
    cannot explain in the difference account, and the cases explain it to the tiyn (the
    dashboard says so); resolving each case empties the account and the day stays settled."""
    book = Book(sessions, E2E_PROVIDER)
    matched = await book.deposit(100_000)
    short = await book.deposit(200_000)
    other_currency = await book.deposit(50_000)
    fee_off = await book.deposit(80_000)
    twice = await book.deposit(70_000)
    unreported = await book.deposit(60_000)
    expired = await book.deposit(40_000, credited=False)
    unknown = f"dep_{uuid.uuid4().hex[:24]}"
    report = (
        Report(E2E_PROVIDER)
        .pay(matched, 100_000)
        .pay(short, 190_000, fee=fee_for(200_000, FEE_BPS))
        .add("payment", other_currency, 50_000, currency="USD", fee=750)
        .pay(fee_off, 80_000, fee=2_000)
        .pay(twice, 70_000)
        .pay(twice, 70_000)
        .pay(expired, 40_000)
        .pay(unknown, 11_000)
        .add("chargeback", matched, 10_000)
    )
    async with _client(e2e_app, api_keys[Role.OPERATOR]) as operator:
        result = await reconcile(operator, temporal_client, report)
        assert result.status == "completed"
        difference = recon_difference(E2E_PROVIDER, "KZT").code

        # The reported chargeback was charged to its player by the run itself.
        (charged,) = result.chargebacks_charged
        async with sessions() as session:
            chargeback_case = await get_case(session, case_id=charged)
        assert chargeback_case is not None
        assert (chargeback_case.kind, chargeback_case.reference) == ("chargeback", matched)
        assert (chargeback_case.status, chargeback_case.resolved_by) == (
            "resolved",
            "reconciliation",
        )
        listed = await operator.get(
            "/v1/recon/cases", params={"provider": E2E_PROVIDER, "status": "open"}
        )
        cases = {(c["kind"], c["reference"]): c for c in listed.json()["data"]}
        assert len(cases) == 7
        assert await balance(sessions, difference) == result.difference_minor - 10_000
        # The cases explain the difference account to the tiyn.
        assert -sum(c["held_amount"] for c in cases.values()) == (result.difference_minor - 10_000)
        view = await operator.get(
            "/v1/finance/recon",
            params={"date": report.day.isoformat(), "provider": E2E_PROVIDER},
        )
        days = {d["currency"]: d for d in view.json()["data"]}
        # The currency mismatch is a case in the line's currency; nothing of it waits.
        assert {
            c: (d["clearing_balance"], d["explained"], d["open_cases"]) for c, d in days.items()
        } == {
            "KZT": (0, True, 6),
            "USD": (0, True, 1),
        }

        plan = {
            ("amount_mismatch", short): "write_off",  # the provider took 100.00 less
            ("currency_mismatch", other_currency): "acknowledge",
            ("fee_mismatch", fee_off): "acknowledge",
            ("duplicate", twice): "credit_player",  # paid twice: the player keeps it
            ("missing_ours", expired): "credit_player",  # a late payment: credited now
            ("missing_ours", unknown): "write_off",  # nobody's money
            ("missing_provider", unreported): "write_off",  # never reached us
        }
        assert set(plan) == set(cases)
        for key, action in plan.items():
            done = await resolve(operator, cases[key]["id"], action, f"e2e {action}")
            assert done.status_code == 200, (key, done.text)
            assert done.json()["status"] == "resolved"

        assert await balance(sessions, difference) == 0
        shown = await operator.get(f"/v1/deposits/{expired}")
        assert shown.json()["status"] == "succeeded"
        after = await operator.get(
            "/v1/finance/recon",
            params={"date": report.day.isoformat(), "provider": E2E_PROVIDER},
        )
        for day in after.json()["data"]:
            assert (day["difference_balance"], day["open_cases"], day["explained"]) == (0, 0, True)
    assert await settled_through(sessions, report.day, E2E_PROVIDER) == []
    await assert_invariants(sessions)
