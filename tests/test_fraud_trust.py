"""Issue 18 end to end: anti-fraud a risk team would trust.

Through the API, the deposit and withdrawal workflows and PostgreSQL: velocity under concurrency,
card identity by fingerprint, the cardholder name, missing signals, block and allow lists,
explanations and shadow rules, backtests, credit-and-block reviews, the closed loop, monitoring.
"""

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.deposit_methods import card_fingerprint_key
from config import Settings
from db import monitoring
from db.models import PaymentAttempt
from domain.cards import luhn_valid
from domain.fraud.config import DEFAULT_RULES_PATH, load_rule_set
from domain.fraud.geo import card_fingerprint
from risk.backtest import backtest, format_report
from tests.conftest import (
    ROOT,
    _result,
    card_deposit,
    deposit_and_wait,
    make_iin,
    new_player,
    player_body,
)
from tests.fraud_helpers import overlay
from tests.test_fraud_api import post_deposit, wait_status
from tests.test_withdrawals import create, finished, fresh_iban, wager

RULES = load_rule_set(DEFAULT_RULES_PATH)


def card_ending(last4: str, bin_: str = "440563") -> str:
    """A Luhn-valid card of `bin_` ending in `last4` that no other test uses."""
    middle = f"{uuid.uuid4().int % 10**5:05d}"
    return next(n for d in "0123456789" if luhn_valid(n := f"{bin_}{middle}{d}{last4}"))


def client_of(device: str | None = None, ip: str | None = None) -> dict[str, str]:
    return {
        "device_id": device or f"dev-{uuid.uuid4().hex[:10]}",
        "ip": ip or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7",
    }


def deposit_body(player: str, amount: int = 500_000, **card: Any) -> dict[str, Any]:
    body = card_deposit(player, amount, number=card.pop("number", card_ending("4242")))
    body["details"]["card"].update(card)
    body["client"] = client_of()
    return body


async def test_twenty_concurrent_deposits_do_not_pass_five_in_ten_minutes(
    api: httpx.AsyncClient, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Decisions for one person are serialized: 20 deposits at once, at most 5 let through."""
    assert RULES.deposit.rules["velocity_count_10m"].int("max") == 5
    player = await new_player(api)
    number = card_ending("4242")
    responses = await asyncio.gather(
        *(post_deposit(api, deposit_body(player, 100_000, number=number)) for _ in range(20))
    )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    ids = [r.json()["id"] for r in responses]
    await asyncio.gather(
        *(_result(temporal_client.get_workflow_handle(r.json()["workflow_id"])) for r in responses)
    )
    async with sessions() as session:
        decisions: dict[str, str] = dict(
            (
                await session.execute(
                    text("SELECT payment_id, decision FROM fraud_decisions WHERE player_id = :p"),
                    {"p": player},
                )
            ).all()
        )
    assert set(decisions) == set(ids)
    let_through = [i for i in ids if decisions[i] != "decline"]
    assert len(let_through) == 5, decisions
    declined = (
        await api.get(f"/v1/deposits/{next(i for i in ids if i not in let_through)}")
    ).json()
    assert declined["status"] == "declined"
    assert "velocity_count_10m" in declined["risk"]["reasons"]


async def test_strangers_with_cards_of_one_bin_and_last_four_are_not_linked(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
    settings: Settings,
) -> None:
    """The card is its fingerprint (HMAC-SHA256 of the PAN): one BIN, one last four, two cards."""
    first, second = card_ending("7777"), card_ending("7777")
    assert first[:6] == second[:6]
    assert first[-4:] == second[-4:]
    assert first != second
    one, two = await new_player(api), await new_player(api)
    rule = "[deposit.rules.multi_account_card]\nmax_other_identities = 1\n"
    with overlay(fraud_overlay, rule, "bin"):
        mine = await deposit_and_wait(api, temporal_client, deposit_body(one, number=first))
        theirs = await deposit_and_wait(api, temporal_client, deposit_body(two, number=second))
        assert (mine["risk"]["decision"], theirs["risk"]["decision"]) == ("approve", "approve")
        assert theirs["risk"]["reasons"] == []
        shared = await post_deposit(api, deposit_body(two, number=first))  # the same card
        held = await wait_status(api, shared.json()["id"], "in_review")
    assert held["risk"]["reasons"] == ["multi_account_card"]
    explained = (await operator_api.get(f"/v1/risk/decisions/{held['id']}")).json()
    assert explained["signals"]["card"] == card_fingerprint(first, card_fingerprint_key(settings))
    assert explained["facts"]["other_identities"]["card"] == 1
    await operator_api.post(f"/v1/deposits/{held['id']}/reject", json={"reason": "shared card"})


async def test_the_cardholder_name_is_accepted_and_compared(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player = await new_player(api)  # Aigerim Tulegenova
    own = await deposit_and_wait(
        api, temporal_client, deposit_body(player, holder_name="ТУЛЕГЕНОВА АЙГЕРИМ")
    )
    assert (own["status"], own["risk"]["reasons"]) == ("succeeded", [])
    someone = await post_deposit(api, deposit_body(player, holder_name="IVAN PETROV"))
    assert someone.status_code == 202, someone.text
    held = await wait_status(api, someone.json()["id"], "in_review")
    assert held["risk"]["reasons"] == ["card_holder_mismatch"]
    assert "IVAN" not in str(held)  # the name itself is not kept
    explained = (await operator_api.get(f"/v1/risk/decisions/{held['id']}")).json()
    assert explained["facts"]["card_holder_matches"] is False
    rejected = await operator_api.post(
        f"/v1/deposits/{held['id']}/reject", json={"reason": "someone else's card"}
    )
    assert rejected.status_code == 200, rejected.text
    blank = await post_deposit(api, deposit_body(player, holder_name="   "))
    assert (blank.status_code, blank.json()["code"]) == (422, "invalid_card_details")


async def test_a_payment_without_device_or_ip_scores(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player = await new_player(api)
    body = deposit_body(player)
    del body["client"]
    shown = await deposit_and_wait(api, temporal_client, body)
    assert shown["risk"]["reasons"] == ["missing_device", "missing_ip"]
    assert (shown["risk"]["decision"], shown["risk"]["score"]) == ("approve", 40)
    explained = (await operator_api.get(f"/v1/risk/decisions/{shown['id']}")).json()
    assert explained["facts"]["missing_signals"] == ["device", "ip"]


async def test_block_and_allow_lists_are_checked_first_with_an_audit_trail(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    settings: Settings,
) -> None:
    device = f"dev-{uuid.uuid4().hex[:10]}"
    iin = make_iin()
    created = await api.post("/v1/players", json=player_body(iin=iin))
    player = created.json()["id"]

    async def add(entry: dict[str, Any]) -> httpx.Response:
        return await operator_api.post(
            "/v1/risk/lists", json=entry, headers={"Idempotency-Key": uuid.uuid4().hex}
        )

    refused = await api.post(
        "/v1/risk/lists",
        json={"list_type": "block", "kind": "device", "value": device, "reason": "x"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused.status_code == 403  # operators edit the lists
    block = {"list_type": "block", "kind": "device", "value": device, "reason": "ring device"}
    added = await add(block)
    assert added.status_code == 201, added.text
    entry = added.json()
    assert (entry["active"], entry["events"][0]["action"]) == (True, "added")
    duplicate = await add(block)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "list_entry_exists")
    body = deposit_body(player)
    body["client"]["device_id"] = device
    blocked = await deposit_and_wait(api, temporal_client, body)
    assert (blocked["status"], blocked["risk"]["reasons"]) == ("declined", ["blocklisted"])
    explained = (await operator_api.get(f"/v1/risk/decisions/{blocked['id']}")).json()
    assert explained["facts"]["list_hits"] == [
        {"list_type": "block", "kind": "device", "entry_id": entry["id"]}
    ]
    assert explained["rules"][0]["code"] == "blocklisted"  # checked first

    removed = await operator_api.post(
        f"/v1/risk/lists/{entry['id']}/remove", json={"reason": "false positive"}
    )
    assert removed.status_code == 200
    assert [e["action"] for e in removed.json()["events"]] == ["removed", "added"]
    body = deposit_body(player)
    body["client"]["device_id"] = device
    assert (await deposit_and_wait(api, temporal_client, body))["status"] == "succeeded"

    # An allow list names a trusted player: a foreign card is no longer a review.
    allow = {"list_type": "allow", "kind": "iin", "value": iin, "reason": "VIP, KYC done"}
    allowed = await add(
        {**allow, "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    )
    assert allowed.status_code == 201, allowed.text
    foreign = await deposit_and_wait(
        api, temporal_client, deposit_body(player, number="4111111111111111")
    )
    assert (foreign["status"], foreign["risk"]["reasons"]) == ("succeeded", ["allowlisted"])
    explained = (await operator_api.get(f"/v1/risk/decisions/{foreign['id']}")).json()
    suppressed = [r["code"] for r in explained["rules"] if r["suppressed"]]
    assert suppressed == ["card_country_not_allowed"]
    changed = await operator_api.patch(
        f"/v1/risk/lists/{allowed.json()['id']}", json={"reason": "VIP until review"}
    )
    assert changed.json()["reason"] == "VIP until review"
    assert changed.json()["events"][0]["action"] == "updated"

    # A card by its number (turned into its fingerprint), an IP range.
    number = card_ending("1111")
    card_entry = await add(
        {"list_type": "block", "kind": "card", "value": number, "reason": "stolen"}
    )
    assert card_entry.json()["value"] == card_fingerprint(number, card_fingerprint_key(settings))
    assert number not in card_entry.text
    network = await add(
        {"list_type": "block", "kind": "ip", "value": "203.0.113.9/24", "reason": "proxy farm"}
    )
    assert network.json()["value"] == "203.0.113.0/24"
    body = deposit_body(await new_player(api))
    body["client"]["ip"] = "203.0.113.77"
    assert (await deposit_and_wait(api, temporal_client, body))["status"] == "declined"
    bad = await add({"list_type": "block", "kind": "iban", "value": "KZ00", "reason": "x"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_list_value")
    listed = (await operator_api.get("/v1/risk/lists", params={"kind": "ip"})).json()
    assert any(e["value"] == "203.0.113.0/24" for e in listed["data"])
    audit = (await operator_api.get("/v1/risk/lists/events")).json()["data"]
    assert {"added", "removed", "updated"} <= {e["action"] for e in audit}
    for made in (card_entry, network):
        await operator_api.post(
            f"/v1/risk/lists/{made.json()['id']}/remove", json={"reason": "test over"}
        )


async def test_each_decision_explains_itself_and_shadow_rules_never_act(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player = await new_player(api)
    body = deposit_body(player)
    body["client"]["ip"] = "8.8.8.8"  # US in the sample GeoIP database
    shown = await deposit_and_wait(api, temporal_client, body)
    assert (shown["status"], shown["risk"]["decision"]) == ("succeeded", "approve")
    explained = (await operator_api.get(f"/v1/risk/decisions/{shown['id']}")).json()
    assert explained["shadow_hits"] == ["ip_country_not_allowed"]  # evaluated, never acted
    assert explained["facts"]["ip_country"] == "US"
    assert explained["version"].startswith(RULES.version)
    assert len(explained["rules_hash"]) == 64
    codes = [r["code"] for r in explained["rules"]]
    assert "velocity_count_10m" in codes
    assert "card_holder_mismatch" in codes
    assert (await api.get(f"/v1/risk/decisions/{shown['id']}")).status_code == 403
    missing = await operator_api.get("/v1/risk/decisions/dep_nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "decision_not_found")


async def test_a_backtest_replays_stored_facts_against_a_candidate(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tmp_path: Path,
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    player = await new_player(api)
    small = await deposit_and_wait(api, temporal_client, deposit_body(player, 200_000))
    end = datetime.now(UTC) + timedelta(seconds=1)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(
        DEFAULT_RULES_PATH.read_text().replace('version = "', 'version = "candidate-', 1) + "\n"
    )
    stricter = load_rule_set(
        candidate,
        _overlay(tmp_path, "[deposit.rules.amount_below_minimum]\nmin_amount = 300_000\n"),
    )
    async with sessions() as session:
        report = await backtest(session, stricter, start=start, end=end, kind="deposit")
    mine = [c for c in report.changes if c.payment_id == small["id"]]
    assert len(mine) == 1
    assert (mine[0].stored, mine[0].candidate) == ("approve", "decline")
    assert "amount_below_minimum" in mine[0].candidate_reasons
    assert report.matrix[("approve", "decline")] >= 1
    assert "amount_below_minimum" in format_report(report)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "risk.backtest",
        "--rules",
        str(candidate),
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--database-url",
        str(settings.database_url),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    assert "outcomes (rows: stored, columns: candidate)" in output.decode()
    assert "replayed" in output.decode()


def _overlay(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "overlay.toml"
    path.write_text('version = "stricter"\n' + body)
    return path


async def test_credit_mode_credits_and_blocks_withdrawals_until_reviewed(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    fraud_overlay: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    number = card_ending("5555")
    with overlay(fraud_overlay, '[deposit]\nreview_mode = "credit"\n', "credit"):
        shown = await deposit_and_wait(
            api, temporal_client, deposit_body(player, 1_500_000_00, number=number)
        )
    assert shown["status"] == "succeeded"  # credited
    assert shown["risk"]["review"]["mode"] == "credit"
    assert shown["risk"]["review"]["status"] == "pending"
    await wager(sessions, player, 1_500_000_00)
    body = {
        "player_id": player,
        "amount": 10_000_00,
        "currency": "KZT",
        "method": "card",
        "destination": {"deposit_id": shown["id"]},
    }
    blocked = await api.post(
        "/v1/withdrawals", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert (blocked.status_code, blocked.json()["code"]) == (422, "withdrawals_blocked_by_review")
    assert blocked.json()["deposits_in_review"] == [shown["id"]]
    approved = await operator_api.post(f"/v1/deposits/{shown['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["risk"]["review"]["status"] == "approved"
    again = await operator_api.post(f"/v1/deposits/{shown['id']}/approve")
    assert again.status_code == 200
    rejected = await operator_api.post(f"/v1/deposits/{shown['id']}/reject", json={"reason": "x"})
    assert rejected.status_code == 409
    created = await create(api, body)
    assert created["status"] == "pending"


async def test_withdrawals_go_back_to_the_deposit_instruments_first(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    deposit = await deposit_and_wait(
        api, temporal_client, deposit_body(player, 50_000_00, number=card_ending("3333"))
    )
    assert deposit["status"] == "succeeded"
    await wager(sessions, player, 50_000_00)
    to_iban = {
        "player_id": player,
        "amount": 10_000_00,
        "currency": "KZT",
        "method": "bank_transfer",
        "destination": {"iban": fresh_iban(), "holder_name": "Aigerim Tulegenova"},
    }
    refused = await api.post(
        "/v1/withdrawals", json=to_iban, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "closed_loop_required")
    (allowed,) = refused.json()["allowed_destinations"]
    assert allowed["method"] == "card"
    assert allowed["up_to"] == 50_000_00
    assert allowed["destination"].endswith("3333")
    back = await create(
        api,
        {
            "player_id": player,
            "amount": 50_000_00,
            "currency": "KZT",
            "method": "card",
            "destination": {"deposit_id": deposit["id"]},
        },
    )
    done = await finished(api, temporal_client, back)
    assert done["status"] == "paid", done
    assert "card_not_used_for_deposit" not in done["risk"]["reasons"]


async def test_card_payouts_only_to_cards_that_paid(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    from tests.conftest import VISA_DECLINED

    player = await new_player(api)
    failed = await deposit_and_wait(
        api, temporal_client, card_deposit(player, number=VISA_DECLINED)
    )
    assert failed["status"] == "failed"
    refused = await api.post(
        "/v1/withdrawals",
        json={
            "player_id": player,
            "amount": 1_000_00,
            "currency": "KZT",
            "method": "card",
            "destination": {"deposit_id": failed["id"]},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "card_not_owned")


async def test_monitoring_uses_the_right_denominators_and_method_thresholds(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    provider = f"prov-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    thresholds = settings.monitor_thresholds()
    async with sessions.begin() as session:
        # 10 approved, 2 declined, and 30 waiting for the player or expired: 83% approval.
        outcomes = ["succeeded"] * 10 + ["declined"] * 2 + ["requires_action"] * 20
        outcomes += ["inquiry_expired"] * 10
        for outcome in outcomes:
            session.add(
                PaymentAttempt(
                    payment_id=f"dep_{uuid.uuid4().hex[:12]}",
                    step="create",
                    attempt_no=1,
                    provider=provider,
                    outcome=outcome,
                    latency_ms=100,
                    created_at=now - timedelta(minutes=1),
                )
            )
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(session, now=now, thresholds=thresholds, rules=RULES)
    assert not [key for key in raised if provider in key]
    async with sessions.begin() as session:
        for _ in range(12):
            session.add(
                PaymentAttempt(
                    payment_id=f"dep_{uuid.uuid4().hex[:12]}",
                    step="create",
                    attempt_no=1,
                    provider=provider,
                    outcome="error",
                    latency_ms=100,
                    created_at=now - timedelta(minutes=1),
                )
            )
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(session, now=now, thresholds=thresholds, rules=RULES)
    assert [key for key in raised if key.startswith(f"provider_approval_low:{provider}:")]

    from tests.test_fraud_store import deposit_row, player

    async with sessions.begin() as session:
        me = await player(session)
        for method, minutes in (("bank_transfer", 120), ("card", 20)):
            for _ in range(5):
                deposit_id = await deposit_row(
                    session, me, amount=100_00, status="requires_action", card=None
                )
                await session.execute(
                    text("UPDATE deposits SET method = :m, updated_at = :t WHERE id = :id"),
                    {"m": method, "t": now - timedelta(minutes=minutes), "id": deposit_id},
                )
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(session, now=now, thresholds=thresholds, rules=RULES)
    bucket = f"{now:%Y%m%d%H}"
    assert f"payments_stuck:deposit:card:requires_action:{bucket}" in raised
    # A bank transfer waits days for the player's bank: two hours is not stuck.
    assert f"payments_stuck:deposit:bank_transfer:requires_action:{bucket}" not in raised
