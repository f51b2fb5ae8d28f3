"""Kazakhstan compliance end to end (issue 17): one person per IIN, the exclusion registers, the
unified accounting system (ESU), credit money, cool-offs and reality checks, over the HTTP API
with the simulated registers and ESU. Financial monitoring and the payout deadline:
tests/test_compliance_payouts.py."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client

from api.app import create_app
from config import Settings
from db import fraud as fraud_store
from db.api_keys import issue_key
from db.models import Player
from domain.fraud.config import RuleSource
from domain.roles import Role
from tests.conftest import (
    VISA_OK,
    _client,
    _result,
    card_deposit,
    deposit_and_wait,
    make_iin,
    player_body,
)
from tests.histories_helpers import keep
from tests.test_withdrawals import fund, iban_withdrawal

PROBLEM = "application/problem+json"
VISA_CREDIT = "4012888888881881"


@pytest.fixture(scope="module")
async def compliance_app(settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    """The API without the register cache, so a listing made by a test counts at once."""
    application = create_app(settings.model_copy(update={"exclusion_cache_seconds": 0.0}))
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


@pytest.fixture
async def merchant(
    compliance_app: FastAPI, api_keys: dict[Role, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(compliance_app, api_keys[Role.MERCHANT]) as client:
        yield client


@pytest.fixture
async def operator(
    compliance_app: FastAPI, api_keys: dict[Role, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(compliance_app, api_keys[Role.OPERATOR]) as client:
        yield client


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulated registers and ESU; their behaviour is put back after each test."""
    async with httpx.AsyncClient(base_url=simulator_url) as client:
        yield client
        await client.put("/admin/registers/behaviour", json={})
        await client.put("/admin/esu/behaviour", json={})


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


IINS: dict[str, str] = {}  # player id -> IIN, of the players these tests registered


async def register(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = player_body(**overrides)
    created = await api.post("/v1/players", json=body)
    assert created.status_code == 201, created.text
    player: dict[str, Any] = created.json()
    IINS[player["id"]] = body["iin"]
    return player


async def linked_pair(api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two accounts of one person at one merchant, the second linked to the first."""
    first = await register(api)
    second = await register(api, iin=IINS[first["id"]], link_to=first["id"])
    assert second["person_id"] == first["person_id"]
    return first, second


async def list_on(sim: httpx.AsyncClient, register_name: str, iin: str, **dates: str) -> None:
    listed = await sim.post(
        f"/admin/registers/{register_name}/entries",
        json={"iin": iin, "reason": "test", **dates},
    )
    assert listed.status_code == 201, listed.text


async def deposit(api: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})


async def withdraw(api: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await api.post(
        "/v1/withdrawals", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )


async def refusal_codes(operator: httpx.AsyncClient, player_id: str) -> list[str]:
    found = await operator.get("/v1/compliance/refusals", params={"player_id": player_id})
    assert found.status_code == 200, found.text
    return [r["code"] for r in found.json()["data"]]


# -- one person, one IIN ------------------------------------------------------------------------


async def test_a_second_account_with_the_same_iin_is_refused_unless_linked(
    merchant: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    iin = make_iin()
    first = await register(merchant, iin=iin)
    assert first["person_id"].startswith("psn_")
    again = await merchant.post("/v1/players", json=player_body(iin=iin))
    body = problem(again, 409, "iin_already_registered")
    assert first["id"] in body["detail"]
    wrong = await merchant.post("/v1/players", json=player_body(iin=iin, link_to="pl_nope"))
    problem(wrong, 422, "invalid_link")
    stranger = await register(merchant)
    foreign = await merchant.post("/v1/players", json=player_body(iin=iin, link_to=stranger["id"]))
    problem(foreign, 422, "invalid_link")  # the link names an account of another person
    linked = await register(merchant, iin=iin, link_to=first["id"])
    assert (linked["person_id"], linked["linked_to"]) == (first["person_id"], first["id"])
    # The same external id of the same merchant is still the same account.
    same = await merchant.post(
        "/v1/players", json=player_body(iin=make_iin(), external_id=first["external_id"])
    )
    problem(same, 409, "player_exists")

    # Another merchant (its own key) may hold an account of the same person.
    async with sessions.begin() as session:
        other = await issue_key(
            session, name="casino b", role=Role.MERCHANT, merchant_id="casino-b"
        )
    app = merchant._transport.app  # type: ignore[attr-defined]
    async with _client(app, other.secret) as casino_b:
        elsewhere = await register(casino_b, iin=iin, external_id=first["external_id"])
    assert elsewhere["person_id"] == first["person_id"]


async def test_same_iin_twice_self_exclude_one_deposit_on_the_other_is_refused(
    merchant: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    first, second = await linked_pair(merchant)
    excluded = await merchant.post(
        f"/v1/players/{first['id']}/self-exclusion", json={"until": "2099-01-01"}
    )
    assert excluded.status_code == 200, excluded.text
    refused = await deposit(merchant, card_deposit(second["id"]))
    problem(refused, 422, "self_excluded")
    shown = (await merchant.get(f"/v1/players/{second['id']}/self-exclusion")).json()
    assert shown["active"] is True
    assert await refusal_codes(operator, second["id"]) == ["self_excluded"]
    lifted = await merchant.delete(f"/v1/players/{second['id']}/self-exclusion")
    problem(lifted, 409, "self_exclusion_irrevocable")


async def test_limits_and_velocity_apply_to_the_person_across_accounts(
    merchant: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await linked_pair(merchant)
    limited = await merchant.post(f"/v1/players/{first['id']}/limits", json={"daily": 700_000})
    assert limited.json()["daily"]["amount"] == 700_000
    on_second = (await merchant.get(f"/v1/players/{second['id']}/limits")).json()
    assert on_second["daily"]["amount"] == 700_000
    paid = await deposit_and_wait(merchant, temporal_client, card_deposit(second["id"], 500_000))
    assert paid["status"] == "succeeded"
    problem(
        await deposit(merchant, card_deposit(first["id"], 300_000)), 422, "deposit_limit_exceeded"
    )
    # The fraud engine's velocity by player is the person's: both accounts' payments count.
    async with sessions() as session:
        facts = await fraud_store.deposit_facts(
            session,
            deposit_id="dep_new",
            player_id=first["id"],
            amount_minor=1,
            currency="KZT",
            method="card",
            signals=fraud_store.Signals(),
            rules=RuleSource().current(),
            now=datetime.now(UTC) + timedelta(seconds=1),
        )
    assert facts.velocity["player"].w24h.count == 1
    assert facts.deposit_limits[0].used_minor == 500_000


async def test_limit_decreases_apply_at_once_and_increases_after_24_hours(
    merchant: httpx.AsyncClient,
) -> None:
    player = await register(merchant)
    url = f"/v1/players/{player['id']}/limits"
    assert (await merchant.post(url, json={"weekly": 500_000})).json()["weekly"]["amount"] == (
        500_000
    )
    raised = (await merchant.post(url, json={"weekly": 900_000})).json()["weekly"]
    assert (raised["amount"], raised["pending_amount"]) == (500_000, 900_000)
    starts = datetime.fromisoformat(raised["pending_from"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < starts <= timedelta(hours=24)
    lowered = (await merchant.post(url, json={"weekly": 300_000})).json()["weekly"]
    assert (lowered["amount"], lowered["pending_amount"]) == (300_000, None)


async def test_a_cool_off_stops_deposits_on_every_account_and_cannot_be_lifted(
    merchant: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    first, second = await linked_pair(merchant)
    url = f"/v1/players/{first['id']}/cool-off"
    problem(await merchant.post(url, json={"hours": 23}), 422, "validation_error")
    too_long = datetime.now(UTC) + timedelta(weeks=7)
    problem(await merchant.post(url, json={"until": too_long.isoformat()}), 422, "invalid_cool_off")
    problem(await merchant.post(url, json={}), 422, "invalid_cool_off")
    taken = await merchant.post(url, json={"hours": 48, "reason": "a break"})
    assert taken.status_code == 200, taken.text
    end = taken.json()["cooling_off_until"]
    shorter = await merchant.post(url, json={"hours": 24})
    assert shorter.json()["cooling_off_until"] == end  # never shortened
    refused = await deposit(merchant, card_deposit(second["id"]))
    problem(refused, 422, "cooling_off")
    assert await refusal_codes(operator, second["id"]) == ["cooling_off"]
    problem(await merchant.delete(url), 409, "cool_off_irrevocable")
    shown = (await merchant.get(f"/v1/players/{second['id']}/cool-off")).json()
    assert (shown["active"], shown["cooling_off_until"]) == (True, end)


# -- the exclusion registers --------------------------------------------------------------------


async def test_a_listed_person_cannot_register(
    merchant: httpx.AsyncClient, sim: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    for register_name, code in (
        ("debtors", "debtor_excluded"),
        ("civil_servants", "civil_servant_excluded"),
        ("military", "military_excluded"),
    ):
        iin = make_iin()
        await list_on(sim, register_name, iin)
        problem(await merchant.post("/v1/players", json=player_body(iin=iin)), 422, code)
    refused = await operator.get("/v1/compliance/refusals", params={"code": "military_excluded"})
    latest = refused.json()["data"][0]
    assert (latest["stage"], latest["exclusion_register"]) == ("registration", "military")


async def test_a_person_on_the_debtors_register_cannot_deposit_or_withdraw(
    merchant: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    iin = make_iin()
    player = await register(merchant, iin=iin)
    await fund(sessions, player["id"], 100_000_00, wagered=True)
    await list_on(sim, "debtors", iin, listed_until="2099-12-31")
    problem(await deposit(merchant, card_deposit(player["id"])), 422, "debtor_excluded")
    problem(
        await withdraw(merchant, iban_withdrawal(player["id"], 10_000_00)), 422, "debtor_excluded"
    )
    assert await refusal_codes(operator, player["id"]) == ["debtor_excluded", "debtor_excluded"]
    # Taken off the register, the person may pay again.
    removed = await sim.delete(f"/admin/registers/debtors/entries/{iin}")
    assert removed.status_code == 200
    assert (await deposit(merchant, card_deposit(player["id"]))).status_code == 202


async def test_civil_servants_military_and_self_excluded_people_are_refused_deposits(
    merchant: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for register_name, code, may_withdraw in (
        ("civil_servants", "civil_servant_excluded", False),
        ("military", "military_excluded", False),
        ("self_exclusion", "self_excluded", True),
    ):
        iin = make_iin()
        player = await register(merchant, iin=iin)
        await fund(sessions, player["id"], 50_000_00, wagered=True)
        until = (date.today() + timedelta(days=365)).isoformat()
        await list_on(sim, register_name, iin, listed_until=until)
        problem(await deposit(merchant, card_deposit(player["id"])), 422, code)
        taken_back = await withdraw(merchant, iban_withdrawal(player["id"], 10_000_00))
        if may_withdraw:  # a self-excluded person takes their own balance back
            assert taken_back.status_code == 202, taken_back.text
        else:
            problem(taken_back, 422, code)


async def test_under_21_by_the_iin_cannot_deposit(
    merchant: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    today = datetime.now(UTC).date()
    birth = today.replace(year=today.year - 20)
    iin = make_iin(birth.strftime("%y%m%d"), 5)
    player_id = f"pl_{uuid.uuid4().hex[:20]}"
    async with sessions.begin() as session:  # an account from before the 21+ rule
        session.add(
            Player(
                id=player_id,
                external_id=f"legacy-{uuid.uuid4().hex}",
                iin=iin,
                full_name="Legacy Player",
                birth_date=birth,
                phone="+77010000000",
            )
        )
    problem(await deposit(merchant, card_deposit(player_id)), 422, "underage")


async def test_the_simulated_register_keeps_the_law(sim: httpx.AsyncClient) -> None:
    iin = make_iin()
    today = date.today()
    short = await sim.post(
        "/admin/registers/self_exclusion/entries",
        json={"iin": iin, "listed_until": (today + timedelta(days=90)).isoformat()},
    )
    assert short.status_code == 422  # 6 months at least
    long = await sim.post(
        "/admin/registers/self_exclusion/entries",
        json={"iin": iin, "listed_until": (today + timedelta(days=11 * 365)).isoformat()},
    )
    assert long.status_code == 422  # 10 years at most
    await list_on(
        sim, "self_exclusion", iin, listed_until=(today + timedelta(days=365)).isoformat()
    )
    early = await sim.delete(f"/admin/registers/self_exclusion/entries/{iin}")
    assert early.status_code == 409
    assert early.json()["code"] == "self_exclusion_irrevocable"
    shorter = await sim.post(
        "/admin/registers/self_exclusion/entries",
        json={"iin": iin, "listed_until": (today + timedelta(days=200)).isoformat()},
    )
    assert shorter.status_code == 409
    assert [e["register"] for e in (await sim.get("/admin/registers", params={"iin": iin})).json()]
    await list_on(sim, "debtors", iin)
    assert (await sim.delete(f"/admin/registers/debtors/entries/{iin}")).status_code == 200


async def test_when_the_register_does_not_answer_deposits_fail_closed_withdrawals_go_on(
    merchant: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    api_keys: dict[Role, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await register(merchant)
    await fund(sessions, player["id"], 50_000_00, wagered=True)
    await sim.put("/admin/registers/behaviour", json={"down": True})
    problem(await deposit(merchant, card_deposit(player["id"])), 503, "exclusion_check_unavailable")
    assert await refusal_codes(operator, player["id"]) == ["exclusion_check_unavailable"]
    paid_out = await withdraw(merchant, iban_withdrawal(player["id"], 10_000_00))
    assert paid_out.status_code == 202, paid_out.text
    assert (await merchant.post("/v1/players", json=player_body())).status_code == 201

    # Configured to fail open, a deposit goes on without the registers.
    fail_open = create_app(
        settings.model_copy(update={"exclusion_fail_closed": False, "exclusion_cache_seconds": 0})
    )
    async with fail_open.router.lifespan_context(fail_open):
        fail_open.state.payments._temporal = temporal_client
        async with _client(fail_open, api_keys[Role.MERCHANT]) as open_api:
            assert (await deposit(open_api, card_deposit(player["id"]))).status_code == 202


async def test_register_answers_are_cached_briefly(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """The session's API keeps answers for a minute: a registration and a deposit right after
    it ask the register once."""
    iin = make_iin()
    player = await api.post("/v1/players", json=player_body(iin=iin))
    assert player.status_code == 201
    assert (await deposit(api, card_deposit(player.json()["id"]))).status_code == 202
    assert (await sim.get(f"/admin/registers/lookups/{iin}")).json() == {"lookups": 1}


# -- the unified accounting system (ESU) --------------------------------------------------------


async def test_the_esu_refuses_a_blocked_person_before_any_money_moves(
    merchant: httpx.AsyncClient, operator: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    iin = make_iin()
    player = await register(merchant, iin=iin)
    blocked = await sim.post("/admin/esu/blocks", json={"iin": iin, "reason": "convicted"})
    assert blocked.status_code == 201
    body = problem(await deposit(merchant, card_deposit(player["id"])), 422, "esu_refused")
    assert "convicted" in body["detail"]
    listed = await merchant.get("/v1/deposits", params={"player_id": player["id"]})
    assert listed.json()["data"] == []  # nothing was created, nothing tokenized
    assert await refusal_codes(operator, player["id"]) == ["esu_refused"]


async def test_the_esu_monthly_limit_is_honoured(
    merchant: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    iin = make_iin()
    player = await register(merchant, iin=iin)
    limit = {"monthly_limit_minor": 1_000_000, "used_elsewhere_minor": 600_000}
    assert (await sim.put(f"/admin/esu/limits/{iin}", json=limit)).status_code == 200
    body = problem(
        await deposit(merchant, card_deposit(player["id"], 500_000)),
        422,
        "esu_monthly_limit_exceeded",
    )
    assert "400000 left" in body["detail"]
    assert (await deposit(merchant, card_deposit(player["id"], 400_000))).status_code == 202


async def test_when_the_esu_does_not_answer_deposits_fail_closed(
    merchant: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    player = await register(merchant)
    await sim.put("/admin/esu/behaviour", json={"down": True})
    problem(await deposit(merchant, card_deposit(player["id"])), 503, "esu_unavailable")


async def _skipping_result(client: Client, workflow_id: str) -> Any:
    """A workflow's result, with the test server's clock free to skip its waits (retries'
    backoff, status polls)."""
    service = client.test_service
    await service.unlock_time_skipping(UnlockTimeSkippingRequest())
    try:
        handle = client.get_workflow_handle(workflow_id)
        await _result(handle)
        return await handle.result()
    finally:
        await service.lock_time_skipping(LockTimeSkippingRequest())


async def test_every_deposit_withdrawal_and_payout_is_reported_to_the_esu_once(
    merchant: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    iin = make_iin()
    player = await register(merchant, iin=iin)
    # The ESU fails the first two reports: the report is retried until it is taken, once.
    await sim.put("/admin/esu/behaviour", json={"fail_reports_next": 2})
    paid = await deposit_and_wait(merchant, temporal_client, card_deposit(player["id"], 700_000))
    assert paid["status"] == "succeeded"
    report = await _skipping_result(temporal_client, f"compliance-deposit-{paid['id']}")
    assert report["esu"] == "reported"
    await keep(temporal_client, paid["workflow_id"], "deposit_card_succeeded_esu_reported")
    await keep(temporal_client, f"compliance-deposit-{paid['id']}", "compliance_esu_retried")
    # Winnings of another account of the person (no deposit to pay back first) are paid out.
    winner = await register(merchant, iin=iin, link_to=player["id"])
    await fund(sessions, winner["id"], 50_000_00, wagered=True)
    created = await withdraw(merchant, iban_withdrawal(winner["id"], 20_000_00))
    assert created.status_code == 202, created.text
    withdrawal = created.json()
    approved = await operator.post(f"/v1/withdrawals/{withdrawal['id']}/approve")
    assert approved.status_code in (200, 409), approved.text
    await _result(temporal_client.get_workflow_handle(withdrawal["workflow_id"]))
    await keep(temporal_client, withdrawal["workflow_id"], "withdrawal_paid_compliance")
    for kind in ("withdrawal", "payout"):
        done = await _skipping_result(temporal_client, f"compliance-{kind}-{withdrawal['id']}")
        assert done["esu"] in ("reported", "already_reported")
    recorded = (await sim.get("/admin/esu/operations", params={"iin": iin})).json()
    by_kind = {op["kind"]: op for op in recorded}
    assert set(by_kind) == {"deposit", "withdrawal", "payout"}
    assert by_kind["deposit"]["amount_minor"] == 700_000
    assert (by_kind["deposit"]["method"], by_kind["deposit"]["provider"]) == ("card", "halyk")
    assert by_kind["deposit"]["payment_id"] == paid["id"]
    assert by_kind["deposit"]["deliveries"] == 1
    assert by_kind["payout"]["amount_minor"] == 20_000_00
    async with sessions() as session:
        kept = await session.execute(
            text("SELECT kind, receipt_id FROM esu_operations WHERE payment_id IN (:d, :w)"),
            {"d": paid["id"], "w": withdrawal["id"]},
        )
        receipts = {row.kind: row.receipt_id for row in kept}
    assert receipts == {k: op["receipt_id"] for k, op in by_kind.items()}
    # Asked again (a workflow reset, a replay), nothing is reported twice.
    again = await temporal_client.execute_workflow(
        "ComplianceReportWorkflow",
        {"kind": "deposit", "payment_id": paid["id"]},
        id=f"again-{uuid.uuid4().hex}",
        task_queue=settings.temporal_task_queue,
    )
    assert again["esu"] == "already_reported"


# -- credit money -------------------------------------------------------------------------------


async def test_a_credit_card_deposit_is_refused(
    merchant: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    player = await register(merchant)
    body = problem(
        await deposit(merchant, card_deposit(player["id"], number=VISA_CREDIT)),
        422,
        "credit_funds_not_allowed",
    )
    assert "credit" in body["detail"]
    assert await refusal_codes(operator, player["id"]) == ["credit_funds_not_allowed"]
    assert (await deposit(merchant, card_deposit(player["id"], number=VISA_OK))).status_code == 202


async def test_a_kaspi_payment_funded_by_credit_is_not_credited_and_is_refunded(
    merchant: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    simulator: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await register(merchant)
    created = await deposit(
        merchant,
        {
            "player_id": player["id"],
            "amount": 1_500_000,
            "currency": "KZT",
            "method": "qr",
            "details": {},
        },
    )
    assert created.status_code == 202, created.text
    dep = created.json()
    log = await simulator.get(
        f"/admin/providers/kaspi_qr/payments/{dep['id']}", params={"wait": 20}
    )
    qr_id = int(log.json()["payment"]["payment_id"].removeprefix("pay_")[:15], 16)
    confirmed = await simulator.post(
        "/providers/kaspi_qr/test/payment/confirm",
        json={"QrPaymentId": qr_id, "ProductType": "Red", "LoanOfferName": "0-0-3", "LoanTerm": 3},
        headers={"Api-Key": settings.provider_secret("kaspi_qr")},
    )
    assert confirmed.json()["StatusCode"] == 0, confirmed.text
    await _skipping_result(temporal_client, dep["workflow_id"])
    await keep(temporal_client, dep["workflow_id"], "deposit_qr_credit_funds_refunded")
    done = (await merchant.get(f"/v1/deposits/{dep['id']}")).json()
    assert done["status"] == "failed", done
    assert done["status_reason"].startswith("credit_funds_not_allowed:Red"), done
    assert done["funding"]["financed"] is True
    assert [t["kind"] for t in done["ledger"]] == []  # never credited
    assert (await merchant.get(f"/v1/players/{player['id']}")).json()["balance"]["available"] == 0
    async with sessions() as session:
        case = (
            await session.execute(
                text("SELECT policy, resolution FROM late_payments WHERE deposit_id = :id"),
                {"id": dep["id"]},
            )
        ).one()
    assert (case.policy, case.resolution) == ("refund", "refunded")
    alerts = await operator.get("/v1/ops/alerts", params={"kind": "credit_funds_refused"})
    assert dep["id"] in {a["details"].get("payment_id") for a in alerts.json()["data"]}
    assert "credit_funds_not_allowed" in await refusal_codes(operator, player["id"])


# -- reality checks -----------------------------------------------------------------------------


async def test_the_reality_check_shows_deposits_and_net_loss_of_the_person(
    merchant: httpx.AsyncClient, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await linked_pair(merchant)
    for player, amount in ((first, 300_000), (second, 200_000)):
        paid = await deposit_and_wait(merchant, temporal_client, card_deposit(player["id"], amount))
        assert paid["status"] == "succeeded"
    round_id = uuid.uuid4().hex
    for kind, amount in (("bet", 100_000), ("win", 30_000)):
        posted = await merchant.post(
            f"/v1/players/{first['id']}/game-transactions",
            json={"type": kind, "amount": amount, "currency": "KZT", "round_id": round_id},
        )
        assert posted.status_code == 201, posted.text
    shown = await merchant.get(f"/v1/players/{second['id']}/responsible-gaming")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["person_id"] == first["person_id"]
    for window in ("24h", "7d", "30d"):
        figures = body["windows"][window]
        assert (figures["deposits"], figures["deposit_count"]) == (500_000, 2)
        assert figures["net_loss"] == 500_000
        assert (figures["bets"], figures["wins"], figures["game_net_loss"]) == (
            100_000,
            30_000,
            70_000,
        )
    assert body["self_excluded_until"] is None
    assert body["limits"]["daily"]["amount"] is None
    problem(await merchant.get("/v1/players/pl_nope/responsible-gaming"), 404, "player_not_found")
