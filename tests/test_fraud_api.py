"""Fraud decisions end to end: through the API, the deposit workflow and the configured rules."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from domain.fraud.config import DEFAULT_RULES_PATH, load_rule_set
from tests.conftest import (
    _result,
    card_deposit,
    deposit_and_wait,
    make_iin,
    new_player,
    player_body,
)
from tests.fraud_helpers import overlay
from tests.histories_helpers import keep

VERSION = load_rule_set(DEFAULT_RULES_PATH).version


def with_device(body: dict[str, object], device: str, ip: str = "10.9.9.9") -> dict[str, object]:
    return {**body, "client": {"ip": ip, "device_id": device}}


async def post_deposit(api: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    return await api.post("/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})


async def test_self_exclusion_refuses_deposits_with_its_code(api: httpx.AsyncClient) -> None:
    player_id = await new_player(api)
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    response = await api.post(f"/v1/players/{player_id}/self-exclusion", json={"until": until})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True

    refused = await post_deposit(api, card_deposit(player_id))
    assert refused.status_code == 422
    assert refused.json()["code"] == "self_excluded"

    shorter = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    kept = await api.post(f"/v1/players/{player_id}/self-exclusion", json={"until": shorter})
    assert kept.json()["excluded_until"][:10] == until[:10]  # never shortened
    shown = await api.get(f"/v1/players/{player_id}/self-exclusion")
    assert shown.json()["active"] is True


async def test_self_exclusion_input_errors(api: httpx.AsyncClient) -> None:
    player_id = await new_player(api)
    past = await api.post(f"/v1/players/{player_id}/self-exclusion", json={"until": "2020-01-01"})
    assert (past.status_code, past.json()["code"]) == (422, "invalid_until")
    missing = await api.post("/v1/players/pl_nope/self-exclusion", json={"until": "2099-01-01"})
    assert (missing.status_code, missing.json()["code"]) == (404, "player_not_found")


async def test_deposit_limit_refuses_and_raising_it_waits(api: httpx.AsyncClient) -> None:
    player_id = await new_player(api)
    response = await api.post(f"/v1/players/{player_id}/limits", json={"daily": 800_000})
    assert response.status_code == 200, response.text
    assert response.json()["daily"] == {
        "amount": 800_000,
        "pending_amount": None,
        "pending_from": None,
    }
    assert (await post_deposit(api, card_deposit(player_id, 500_000))).status_code == 202

    refused = await post_deposit(api, card_deposit(player_id, 300_001))
    assert refused.status_code == 422
    assert refused.json()["code"] == "deposit_limit_exceeded"
    assert "daily" in refused.json()["detail"]

    raised = (await api.post(f"/v1/players/{player_id}/limits", json={"daily": 5_000_000})).json()
    assert raised["daily"]["amount"] == 800_000  # a higher limit waits out the cooling-off
    assert raised["daily"]["pending_amount"] == 5_000_000
    assert (await post_deposit(api, card_deposit(player_id, 300_001))).status_code == 422

    lowered = (await api.post(f"/v1/players/{player_id}/limits", json={"daily": 600_000})).json()
    assert lowered["daily"]["amount"] == 600_000  # a lower one applies at once
    assert (await api.get(f"/v1/players/{player_id}/limits")).json()["daily"]["amount"] == 600_000


async def wait_status(
    api: httpx.AsyncClient, deposit_id: str, *statuses: str, tries: int = 400
) -> dict[str, Any]:
    """Poll the deposit until it reaches one of `statuses`."""
    shown: dict[str, Any] = {}
    for _ in range(tries):
        shown = (await api.get(f"/v1/deposits/{deposit_id}")).json()
        if shown["status"] in statuses:
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"deposit {deposit_id} stayed {shown.get('status')}: {shown}")


async def test_large_deposit_is_held_for_review_with_reasons_and_an_alert(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    """A review is never an approval: the deposit is paid, not credited, until an operator
    approves it; the alert is handled by the decision."""
    player_id = await new_player(api)
    created = await post_deposit(api, card_deposit(player_id, 1_500_000_00))
    assert created.status_code == 202, created.text
    deposit_id = created.json()["id"]
    held = await wait_status(api, deposit_id, "in_review")
    risk = dict(held["risk"])
    assert risk.pop("version")  # the rule set that decided
    assert risk == {
        "decision": "review",
        "score": 40,
        "reasons": ["large_amount", "financial_monitoring_threshold"],
        "review": {
            "mode": "hold",
            "status": "pending",
            "decided_by": None,
            "decided_by_name": None,
            "decided_at": None,
            "reason": None,
        },
    }
    assert held["ledger"] == []  # not credited
    balance = (await api.get(f"/v1/players/{player_id}")).json()["balance"]
    assert balance["available"] == 0
    alerts = (await operator_api.get("/v1/ops/alerts", params={"kind": "payment_review"})).json()
    mine = [a for a in alerts["data"] if a["details"]["payment_id"] == deposit_id]
    assert len(mine) == 1
    assert mine[0]["status"] == "open"
    assert mine[0]["details"]["version"].startswith(VERSION)
    queue = (await operator_api.get("/v1/risk/reviews")).json()["data"]
    item = next(r for r in queue if r["deposit_id"] == deposit_id)
    assert (item["score"], item["reasons"], item["mode"]) == (
        40,
        ["large_amount", "financial_monitoring_threshold"],
        "hold",
    )

    assert (await api.post(f"/v1/deposits/{deposit_id}/approve")).status_code == 403
    approved = await operator_api.post(
        f"/v1/deposits/{deposit_id}/approve", json={"reason": "KYC documents on file"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["risk"]["review"]["status"] == "approved"
    again = await operator_api.post(f"/v1/deposits/{deposit_id}/approve")
    assert again.status_code == 200  # approving twice is harmless
    rejected = await operator_api.post(
        f"/v1/deposits/{deposit_id}/reject", json={"reason": "changed my mind"}
    )
    assert (rejected.status_code, rejected.json()["code"]) == (409, "invalid_state")
    done = await wait_status(api, deposit_id, "succeeded")
    assert [t["kind"] for t in done["ledger"]]
    await _result(temporal_client.get_workflow_handle(done["workflow_id"]))
    await keep(temporal_client, done["workflow_id"], "deposit_card_review_approved")
    balance = (await api.get(f"/v1/players/{player_id}")).json()["balance"]
    assert balance["available"] == 1_500_000_00
    alerts = (await operator_api.get("/v1/ops/alerts", params={"kind": "payment_review"})).json()
    mine = [a for a in alerts["data"] if a["details"]["payment_id"] == deposit_id]
    assert mine[0]["status"] == "handled"  # by the decision


async def test_a_rejected_review_is_declined_and_refunded(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player_id = await new_player(api)
    created = await post_deposit(api, card_deposit(player_id, number="4111111111111111"))
    deposit_id = created.json()["id"]
    held = await wait_status(api, deposit_id, "in_review")
    assert held["risk"]["reasons"] == ["card_country_not_allowed"]
    no_reason = await operator_api.post(f"/v1/deposits/{deposit_id}/reject", json={})
    assert no_reason.status_code == 422
    rejected = await operator_api.post(
        f"/v1/deposits/{deposit_id}/reject", json={"reason": "foreign card, player unreachable"}
    )
    assert rejected.status_code == 200, rejected.text
    shown = await wait_status(api, deposit_id, "declined")
    assert str(shown["status_reason"]).startswith("risk_review_rejected")
    assert shown["ledger"] == []
    review = shown["risk"]["review"]
    assert (review["status"], review["reason"]) == ("rejected", "foreign card, player unreachable")
    assert review["decided_by"]
    approve = await operator_api.post(f"/v1/deposits/{deposit_id}/approve")
    assert (approve.status_code, approve.json()["code"]) == (409, "invalid_state")
    await _result(temporal_client.get_workflow_handle(str(shown["workflow_id"])))
    await keep(temporal_client, str(shown["workflow_id"]), "deposit_card_review_rejected")
    balance = (await api.get(f"/v1/players/{player_id}")).json()["balance"]
    assert balance["available"] == 0


async def test_an_approved_deposit_cannot_be_reviewed(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player_id = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id))
    assert deposit["status"] == "succeeded"
    refused = await operator_api.post(f"/v1/deposits/{deposit['id']}/approve")
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")
    missing = await operator_api.post("/v1/deposits/dep_nope/approve")
    assert (missing.status_code, missing.json()["code"]) == (404, "deposit_not_found")


async def test_alerts_need_an_operator(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient
) -> None:
    assert (await api.get("/v1/ops/alerts")).status_code == 403
    missing = await operator_api.post("/v1/ops/alerts/999999999/handle")
    assert (missing.status_code, missing.json()["code"]) == (404, "alert_not_found")
    checked = await operator_api.post("/v1/ops/alerts/check")
    assert checked.status_code == 200
    assert isinstance(checked.json()["raised"], list)


async def test_changing_the_rule_file_changes_decisions(
    api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    before = await deposit_and_wait(api, temporal_client, card_deposit(player_id, 500_000))
    assert before["risk"]["decision"] == "approve"

    stricter = "[deposit.rules.amount_below_minimum]\nmin_amount = 1_000_000\n"
    with overlay(fraud_overlay, stricter, version="stricter"):
        after = await deposit_and_wait(api, temporal_client, card_deposit(player_id, 500_000))
    assert after["status"] == "declined"
    assert after["status_reason"] == "risk:amount_below_minimum"
    assert after["risk"]["reasons"] == ["amount_below_minimum"]

    async with sessions() as session:
        versions: dict[str, str] = dict(
            (
                await session.execute(
                    text("SELECT payment_id, version FROM fraud_decisions WHERE player_id = :p"),
                    {"p": player_id},
                )
            ).all()
        )
    assert versions == {before["id"]: f"{VERSION}+test", after["id"]: f"{VERSION}+stricter"}


_CARD_ACQUIRERS = ("halyk", "freedom")


def fresh_card() -> str:
    """A Luhn-valid KZ card no other test uses: its declines are this test's only."""
    from domain.cards import luhn_valid

    stem = "440563" + f"{uuid.uuid4().int % 10**9:09d}"
    return next(stem + d for d in "0123456789" if luhn_valid(stem + d))


async def test_card_testing_declines_after_small_declines(
    api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
    simulator: httpx.AsyncClient,
) -> None:
    """Card, device and player are this test's own, so other tests' declines cannot leak in."""
    player_id = await new_player(api)
    device = f"dev-{uuid.uuid4().hex[:8]}"
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    card = fresh_card()
    with overlay(fraud_overlay, "[deposit.rules.card_testing]\nmax_declines = 2\n", "ct"):
        # The acquirers decline everything for a while: two small declined tries.
        try:
            for name in _CARD_ACQUIRERS:
                await simulator.put(f"/admin/providers/{name}/behaviour", json={"decline_rate": 1})
            for _ in range(2):
                body = with_device(card_deposit(player_id, 100_00, number=card), device, ip)
                shown = await deposit_and_wait(api, temporal_client, body)
                assert shown["status"] == "failed", shown
                assert shown["status_reason"].startswith("provider_declined"), shown
        finally:
            for name in _CARD_ACQUIRERS:
                await simulator.put(f"/admin/providers/{name}/behaviour", json={})
        third = await deposit_and_wait(
            api,
            temporal_client,
            with_device(card_deposit(player_id, 100_00, number=card), device, ip),
        )
    assert third["status"] == "declined"
    assert third["risk"]["reasons"] == ["card_testing"]
    assert third["attempts"] == []


async def test_players_sharing_a_device_are_reviewed(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
) -> None:
    device = f"dev-{uuid.uuid4().hex[:8]}"
    ids = []
    for birth in ("850505", "880808", "910303"):
        response = await api.post("/v1/players", json=player_body(iin=make_iin(birth)))
        ids.append(response.json()["id"])
    rule = "[deposit.rules.multi_account_device]\nmax_other_identities = 2\n"
    with overlay(fraud_overlay, rule, "ma"):
        decisions = [
            (await deposit_and_wait(api, temporal_client, with_device(card_deposit(p), device)))[
                "risk"
            ]
            for p in ids[:2]
        ]
        third = await post_deposit(api, with_device(card_deposit(ids[2]), device))
        held = await wait_status(api, third.json()["id"], "in_review")
    assert [d["decision"] for d in decisions] == ["approve", "approve"]
    assert held["risk"]["decision"] == "review"
    assert held["risk"]["reasons"] == ["multi_account_device"]
    alerts = await operator_api.get("/v1/ops/alerts", params={"kind": "multi_account_device"})
    assert any(a["details"]["payment_id"] == held["id"] for a in alerts.json()["data"])
    rejected = await operator_api.post(
        f"/v1/deposits/{held['id']}/reject", json={"reason": "a ring of accounts"}
    )
    assert rejected.status_code == 200, rejected.text


async def test_withdrawal_decisions_come_from_the_rule_file(
    api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The withdrawal workflow's risk step is the engine's: score, reasons and version stored on
    the withdrawal and in fraud_decisions, and a rule switched off in the file stops firing."""
    from tests.test_withdrawals import create, finished, fund, iban_withdrawal

    player_id = await new_player(api)
    await fund(sessions, player_id, 100_000_00, wagered=True)
    reviewed = await create(api, iban_withdrawal(player_id, 10_000_00))  # a new IBAN
    for _ in range(200):  # its risk step runs before the rule file changes
        if (await api.get(f"/v1/withdrawals/{reviewed['id']}")).json()["status"] == "in_review":
            break
        await asyncio.sleep(0.05)
    off = "[withdrawal.rules.new_payout_destination]\nenabled = false\n"
    with overlay(fraud_overlay, off, "no-new-destination"):
        auto = await create(api, iban_withdrawal(player_id, 10_000_00, _other_iban()))
        done = await finished(api, temporal_client, auto)
    assert done["status"] == "paid"
    assert done["risk"].pop("version")  # the rule set that decided
    assert done["risk"] == {"decision": "approve", "score": 0, "reasons": []}
    cancelled = await api.post(f"/v1/withdrawals/{reviewed['id']}/cancel")
    assert cancelled.status_code == 200
    shown = await finished(api, temporal_client, reviewed)
    assert shown["risk"].pop("version")  # the rule set that decided
    assert shown["risk"] == {
        "decision": "review",
        "score": 30,
        "reasons": ["new_payout_destination"],
    }
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT f.payment_id, f.kind, f.version, f.destination_key, w.risk->>'version' "
                    "FROM fraud_decisions f JOIN withdrawals w ON w.id = f.payment_id "
                    "WHERE f.player_id = :p ORDER BY f.created_at"
                ),
                {"p": player_id},
            )
        ).all()
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (reviewed["id"], "withdrawal", f"{VERSION}+test", f"{VERSION}+test"),
        (
            auto["id"],
            "withdrawal",
            f"{VERSION}+no-new-destination",
            f"{VERSION}+no-new-destination",
        ),
    ]
    assert all(r[3] for r in rows)  # linked by the destination's fingerprint


def _other_iban() -> str:
    from domain.iban import with_check_digits

    return with_check_digits("125" + f"KZT{uuid.uuid4().int % 10**10:010d}"[:13])
