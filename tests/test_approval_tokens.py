"""Approvals cannot be forged through Temporal (issue 20, point 6).

Whoever reaches Temporal can send an update, so each decision update carries a token the API
signs for that payment, decision and person (domain/approvals.py). Here updates are sent
straight through the Temporal client, as an attacker would: without a token, with a tampered
one, one for another payment or the other decision, another person's, an expired one, one
signed with another secret. The validator refuses each before it is written, and no money
moves; the API's own path still works, and a token read back from a history cannot be reused
for anything else.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain import approvals
from domain.approvals import ApprovalRefused, details_digest, sign, verify
from tests.approval_helpers import person_key
from tests.conftest import _client, card_deposit, new_player
from tests.test_withdrawals import balance, finished, kinds, withdrawal_in_review
from workflows.deposit import DepositWorkflow
from workflows.deposit_review import ReviewInput as DepositReviewInput
from workflows.withdrawal import ReviewInput, WithdrawalWorkflow

SECRET = b"s" * 40
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


def _token(**overrides: Any) -> str:
    claims: dict[str, Any] = {
        "workflow_id": "withdrawal-wd_1",
        "decision": "approve",
        "operator_id": "op_1",
        "actor_name": "Aliya",
        "reason": "documents on file",
        "expires_at": NOW + timedelta(minutes=2),
    }
    claims.update(overrides)
    return sign(SECRET, **claims)


def _verify(token: str | None, **overrides: Any) -> approvals.Claims:
    expected: dict[str, Any] = {
        "workflow_id": "withdrawal-wd_1",
        "decision": "approve",
        "operator_id": "op_1",
        "actor_name": "Aliya",
        "reason": "documents on file",
        "now": NOW,
    }
    expected.update(overrides)
    return verify(SECRET, token, **expected)


# -- the token itself ------------------------------------------------------------------------


def test_a_token_verifies_for_exactly_its_payment_decision_and_person() -> None:
    claims = _verify(_token())
    assert (claims.workflow_id, claims.decision, claims.operator_id) == (
        "withdrawal-wd_1",
        "approve",
        "op_1",
    )
    assert claims.details == details_digest("Aliya", "documents on file")


@pytest.mark.parametrize(
    ("token_overrides", "verify_overrides", "reason"),
    [
        ({}, {"workflow_id": "withdrawal-wd_2"}, "wrong_payment"),
        ({}, {"decision": "reject"}, "wrong_decision"),
        ({}, {"operator_id": "op_2"}, "wrong_operator"),
        ({}, {"actor_name": "Someone else"}, "wrong_details"),
        ({}, {"reason": "another reason"}, "wrong_details"),
        ({}, {"now": NOW + timedelta(minutes=2)}, "expired"),
        ({"expires_at": NOW - timedelta(seconds=1)}, {}, "expired"),
        ({"expires_at": NOW + timedelta(days=2)}, {}, "too_long_lived"),
    ],
)
def test_a_token_is_refused_for_anything_else(
    token_overrides: dict[str, Any], verify_overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ApprovalRefused) as refused:
        _verify(_token(**token_overrides), **verify_overrides)
    assert refused.value.reason == reason


def test_a_missing_malformed_tampered_or_foreign_token_is_refused() -> None:
    token = _token()
    version, body, mac = token.split(".")
    other_claims = _token(workflow_id="withdrawal-wd_2").split(".")[1]
    cases = {
        None: "missing",
        "": "missing",
        "v1.abc": "malformed",
        "v2." + body + "." + mac: "malformed",
        "x" * 5000: "malformed",
        f"{version}.{other_claims}.{mac}": "bad_signature",  # claims swapped under a signature
        f"{version}.{body}.{mac[:-2]}AA": "bad_signature",
        sign(b"another secret", **_claims()): "bad_signature",
    }
    for candidate, reason in cases.items():
        with pytest.raises(ApprovalRefused) as refused:
            _verify(candidate)
        assert refused.value.reason == reason, candidate


def _claims() -> dict[str, Any]:
    return {
        "workflow_id": "withdrawal-wd_1",
        "decision": "approve",
        "operator_id": "op_1",
        "actor_name": "Aliya",
        "reason": "documents on file",
        "expires_at": NOW + timedelta(minutes=2),
    }


def test_a_worker_without_a_secret_refuses_everything() -> None:
    with pytest.raises(ApprovalRefused) as refused:
        approvals.worker_secret("a-queue-no-worker-polls")
    assert refused.value.reason == "not_configured"


# -- through Temporal, as an attacker -------------------------------------------------------


async def _refused(handle: WorkflowHandle[Any, Any], update: Any, review: Any) -> str:
    """The update is refused by its validator: the reason it gives."""
    try:
        await handle.execute_update(update, review)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        assert isinstance(cause, ApplicationError), cause
        assert cause.type == "ApprovalRefused", cause
        return str(cause.details[0]) if cause.details else cause.message
    except RPCError as exc:  # how the time-skipping server answers some refusals
        return str(exc)
    raise AssertionError("a forged update was accepted")


async def _token_for(
    env: WorkflowEnvironment,
    settings: Settings,
    *,
    workflow_id: str,
    decision: approvals.Decision,
    review: Any,
    ttl: timedelta = timedelta(minutes=2),
    secret: bytes | None = None,
) -> str:
    now = await env.get_current_time()
    return sign(
        secret or settings.approval_token_secret.get_secret_value().encode(),
        workflow_id=workflow_id,
        decision=decision,
        operator_id=review.actor_id,
        actor_name=review.actor_name,
        reason=review.reason,
        expires_at=now + ttl,
    )


async def test_forged_withdrawal_decisions_are_refused_and_move_no_money(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    sessions: Sessions,
) -> None:
    target = await withdrawal_in_review(api, sessions, 60_000_00)
    elsewhere = await withdrawal_in_review(api, sessions, 60_000_00)
    handle = temporal_client.get_workflow_handle(target["workflow_id"])
    before = await balance(api, target["player_id"])
    review = ReviewInput(actor_id="op_attacker", actor_name="Attacker", reason="looks fine")

    async def token(**kw: Any) -> str:
        args: dict[str, Any] = {
            "workflow_id": target["workflow_id"],
            "decision": "approve",
            "review": review,
        }
        args.update(kw)
        return await _token_for(temporal_env, settings, **args)

    good = await token()
    version, body, mac = good.split(".")
    forged = {
        "missing": review,
        "malformed": review.model_copy(update={"approval_token": "v1.e30"}),
        "bad_signature": review.model_copy(
            update={"approval_token": f"{version}.{body[:-3]}AAA.{mac}"}
        ),
        "wrong_payment": review.model_copy(
            update={"approval_token": await token(workflow_id=elsewhere["workflow_id"])}
        ),
        "wrong_decision": review.model_copy(
            update={"approval_token": await token(decision="reject")}
        ),
        "expired": review.model_copy(
            update={"approval_token": await token(ttl=timedelta(seconds=-1))}
        ),
        "foreign secret": review.model_copy(
            update={"approval_token": await token(secret=b"not the platform's secret" * 2)}
        ),
        "wrong_operator": review.model_copy(
            update={"actor_id": "op_someone", "approval_token": good}
        ),
        "wrong_details": review.model_copy(update={"reason": "other", "approval_token": good}),
    }
    for what, candidate in forged.items():
        message = await _refused(handle, WithdrawalWorkflow.approve, candidate)
        expected = "bad_signature" if what == "foreign secret" else what
        assert expected in message, (what, message)
    reject = review.model_copy(update={"approval_token": await token()})  # an approve token
    assert "wrong_decision" in await _refused(handle, WithdrawalWorkflow.reject, reject)
    cancel = ReviewInput(actor_id="key_x", actor_name="player")
    assert "missing" in await _refused(handle, WithdrawalWorkflow.cancel, cancel)

    # Nothing was decided, recorded or moved.
    assert await handle.query(WithdrawalWorkflow.status) == "in_review"
    shown = (await api.get(f"/v1/withdrawals/{target['id']}")).json()
    assert (shown["status"], shown["reviews"]) == ("in_review", [])
    assert kinds(shown) == ["withdrawal_hold"]
    assert await balance(api, target["player_id"]) == before

    # The API path still works: it signs for the operator who asked.
    approved = await operator_api.post(f"/v1/withdrawals/{target['id']}/approve")
    assert approved.status_code == 200, approved.text
    done = await finished(api, temporal_client, target)
    assert done["status"] == "paid"
    assert [r["operator_name"] for r in done["reviews"]] == ["test operator"]
    assert done["reviews"][0]["operator_id"].startswith("op_")  # the person, not the key


async def _accepted_review(handle: WorkflowHandle[Any, Any], client: Client) -> ReviewInput:
    """The first update accepted in the workflow's history, as anyone reading it sees it."""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            [review] = await client.data_converter.decode(
                request.input.args.payloads, [ReviewInput]
            )
            assert isinstance(review, ReviewInput)
            return review
    raise AssertionError("no accepted update in the history")


async def test_a_token_read_from_a_history_cannot_be_reused_elsewhere(
    app: Any,
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: Sessions,
    settings: Settings,
) -> None:
    """A large withdrawal needs two people. The first approval's token is in the history: it
    does not make a second approval (another person), a rejection, or an approval of another
    withdrawal; sent again as it is, it is the same person approving again, which counts once."""
    big = settings.withdrawal_four_eyes_from_minor
    target = await withdrawal_in_review(api, sessions, big)
    other = await withdrawal_in_review(api, sessions, big)
    assert target["approvals_needed"] == 2
    first = await operator_api.post(f"/v1/withdrawals/{target['id']}/approve")
    assert first.status_code == 200, first.text
    handle = temporal_client.get_workflow_handle(target["workflow_id"])
    seen = await _accepted_review(handle, temporal_client)
    assert seen.approval_token

    as_someone_else = seen.model_copy(update={"actor_id": "op_accomplice"})
    assert "wrong_operator" in await _refused(handle, WithdrawalWorkflow.approve, as_someone_else)
    assert "wrong_decision" in await _refused(handle, WithdrawalWorkflow.reject, seen)
    other_handle = temporal_client.get_workflow_handle(other["workflow_id"])
    assert "wrong_payment" in await _refused(other_handle, WithdrawalWorkflow.approve, seen)

    replayed = await handle.execute_update(WithdrawalWorkflow.approve, seen)
    assert (replayed.changed, replayed.approvals, replayed.status) == (
        False,
        [seen.actor_id],
        "in_review",
    )
    async with sessions.begin() as session:
        second = await person_key(session, "second reviewer")
    async with _client(app, second.secret) as reviewer:
        done = await reviewer.post(f"/v1/withdrawals/{target['id']}/approve")
    assert done.status_code == 200, done.text
    paid = await finished(api, temporal_client, target)
    assert paid["status"] == "paid"
    assert sorted(r["operator_name"] for r in paid["reviews"]) == [
        "second reviewer",
        "test operator",
    ]


async def test_a_forged_deposit_review_is_refused_and_credits_nothing(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
) -> None:
    from tests.test_fraud_api import post_deposit, wait_status

    player_id = await new_player(api)
    created = await post_deposit(api, card_deposit(player_id, 1_500_000_00))
    assert created.status_code == 202, created.text
    held = await wait_status(api, created.json()["id"], "in_review")
    handle = temporal_client.get_workflow_handle(held["workflow_id"])
    review = DepositReviewInput(actor_id="op_attacker", actor_name="Attacker")
    assert "missing" in await _refused(handle, DepositWorkflow.approve, review)
    reject_token = await _token_for(
        temporal_env, settings, workflow_id=held["workflow_id"], decision="reject", review=review
    )
    with_reject_token = review.model_copy(update={"approval_token": reject_token})
    assert "wrong_decision" in await _refused(handle, DepositWorkflow.approve, with_reject_token)
    expired = await _token_for(
        temporal_env,
        settings,
        workflow_id=held["workflow_id"],
        decision="approve",
        review=review,
        ttl=timedelta(seconds=-1),
    )
    stale = review.model_copy(update={"approval_token": expired})
    assert "expired" in await _refused(handle, DepositWorkflow.approve, stale)

    shown = (await api.get(f"/v1/deposits/{held['id']}")).json()
    assert (shown["status"], shown["ledger"]) == ("in_review", [])  # not credited
    assert shown["risk"]["review"]["status"] == "pending"
    assert (await api.get(f"/v1/players/{player_id}")).json()["balance"]["available"] == 0

    approved = await operator_api.post(f"/v1/deposits/{held['id']}/approve")
    assert approved.status_code == 200, approved.text
    review_shown = approved.json()["risk"]["review"]
    assert review_shown["status"] == "approved"
    assert (review_shown["decided_by"][:3], review_shown["decided_by_name"]) == (
        "op_",
        "test operator",
    )
    done = await wait_status(api, held["id"], "succeeded")
    assert done["ledger"]
