"""Four eyes by person (issue 20, point 7): operators are people, API keys belong to them.

Two approvals need two different people, not two keys of one; whoever asked for a case's
resolution cannot approve it with another key; admin keys bypass none of it; a key that belongs
to no active operator decides nothing; decisions record the person's id and name.
"""

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api import keys as keys_cli
from config import Settings
from db import api_keys, operators
from domain.roles import Role
from tests.approval_helpers import person_key, signed
from tests.conftest import _client
from tests.test_withdrawals import withdrawal_in_review
from workflows.withdrawal import ReviewInput, WithdrawalWorkflow

Sessions = async_sessionmaker[AsyncSession]


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@ops.example.kz"


async def _approve(app: FastAPI, key: str, withdrawal_id: str) -> httpx.Response:
    async with _client(app, key) as client:
        return await client.post(f"/v1/withdrawals/{withdrawal_id}/approve")


# -- the CLI ----------------------------------------------------------------------------------


def test_the_cli_records_people_and_gives_them_keys(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keys_cli, "get_settings", lambda: settings)
    email = _email()
    assert keys_cli.main(["create-operator", "--name", "Aliya Nurlanovna", "--email", email]) == 0
    out = capsys.readouterr().out
    operator_id = out.split()[0]
    assert operator_id.startswith("op_")
    assert f"(Aliya Nurlanovna, {email})" in out
    again = ["create-operator", "--name", "Aliya again", "--email", email.upper()]
    assert keys_cli.main(again) == 1  # one person per e-mail address, whatever its case
    assert f"is operator {operator_id} already" in capsys.readouterr().err
    assert keys_cli.main(["create-operator", "--name", "X", "--email", "not-an-address"]) == 1
    assert "is not an e-mail address" in capsys.readouterr().err

    create_key = ["create", "--role", "operator", "--name", "Aliya laptop"]
    assert keys_cli.main([*create_key, "--operator", operator_id]) == 0
    laptop = capsys.readouterr().out.split()[0]
    assert keys_cli.main(["create", "--role", "admin", "--name", "Aliya admin"]) == 0
    admin = capsys.readouterr().out.split()[0]
    assert keys_cli.main(["assign", admin, "--operator", operator_id]) == 0
    assert f"{admin} belongs to {operator_id}" in capsys.readouterr().out
    assert keys_cli.main(["create", "--role", "merchant", "--name", "casino"]) == 0
    merchant = capsys.readouterr().out.split()[0]
    assert keys_cli.main(["assign", merchant, "--operator", operator_id]) == 1
    assert "merchant key" in capsys.readouterr().err

    assert keys_cli.main(["create-operator", "--name", "Bolat", "--email", _email()]) == 0
    bolat = capsys.readouterr().out.split()[0]
    assert keys_cli.main(["assign", laptop, "--operator", bolat]) == 1  # never changes hands
    assert f"belongs to {operator_id}" in capsys.readouterr().err

    assert keys_cli.main(["rotate", laptop]) == 0
    rotated = capsys.readouterr().out.split()[0]
    assert keys_cli.main(["operators"]) == 0
    listed = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert listed[operator_id].split("\t")[1] == "active"
    assert set(listed[operator_id].split("\t")[4].split(",")) == {laptop, admin, rotated}
    assert keys_cli.main(["list"]) == 0
    keys = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert keys[rotated][4] == operator_id  # the rotated key stays with its person
    assert keys[merchant][4] == "-"

    assert keys_cli.main(["deactivate-operator", operator_id]) == 0
    assert "revoked 3 key(s)" in capsys.readouterr().out
    assert keys_cli.main(["list"]) == 0
    states = {
        line.split("\t")[0]: line.split("\t")[3] for line in capsys.readouterr().out.splitlines()
    }
    assert all(states[key].startswith("revoked") for key in (laptop, admin, rotated))
    assert keys_cli.main(["create", *create_key[1:], "--operator", operator_id]) == 1
    assert "deactivated" in capsys.readouterr().err


# -- four eyes by person ----------------------------------------------------------------------


async def test_two_keys_of_one_person_cannot_give_both_approvals(
    app: FastAPI, api: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    async with sessions.begin() as session:
        first = await person_key(session, "Dana")
        person = await operators.operator_id_of_key(session, key_id=first.holder.key_id)
        assert person is not None
        second = await person_key(session, "Dana (phone)", operator_id=person)
        admin = await person_key(session, "Dana (admin)", role=Role.ADMIN, operator_id=person)
        colleague = await person_key(session, "Erlan")
    withdrawal = await withdrawal_in_review(api, sessions, settings.withdrawal_four_eyes_from_minor)
    assert withdrawal["approvals_needed"] == 2

    for key in (first, second, admin):  # one person, three keys: one approval
        response = await _approve(app, key.secret, withdrawal["id"])
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "in_review"
    shown = (await api.get(f"/v1/withdrawals/{withdrawal['id']}")).json()
    assert [(r["operator_id"], r["operator_name"]) for r in shown["reviews"]] == [
        (person, "Dana")  # the person's id and name, whichever key
    ]

    done = await _approve(app, colleague.secret, withdrawal["id"])
    assert done.status_code == 200, done.text
    assert done.json()["status"] in ("approved", "processing", "paid")
    names = sorted(r["operator_name"] for r in done.json()["reviews"])
    assert names == ["Dana", "Erlan"]


async def test_a_rotated_key_is_still_the_same_person(
    app: FastAPI, api: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    async with sessions.begin() as session:
        old = await person_key(session, "Gulnara")
        rotated = await api_keys.rotate_key(
            session, key_id=old.holder.key_id, grace=timedelta(hours=1)
        )
    assert rotated is not None
    withdrawal = await withdrawal_in_review(api, sessions, settings.withdrawal_four_eyes_from_minor)
    assert (await _approve(app, old.secret, withdrawal["id"])).status_code == 200
    again = await _approve(app, rotated.new.secret, withdrawal["id"])
    assert (again.status_code, again.json()["status"]) == (200, "in_review")
    assert len(again.json()["reviews"]) == 1


async def test_keys_of_no_active_operator_decide_nothing_admin_keys_included(
    app: FastAPI, api: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    async with sessions.begin() as session:
        nobodys_admin = await api_keys.issue_key(session, name="shared admin", role=Role.ADMIN)
        nobodys_operator = await api_keys.issue_key(session, name="shared ops", role=Role.OPERATOR)
        leaving = await person_key(session, "Leaving")
    withdrawal = await withdrawal_in_review(api, sessions, 60_000_00)
    wid = withdrawal["id"]
    for key in (nobodys_admin, nobodys_operator):
        async with _client(app, key.secret) as client:
            decisions = [
                await client.post(f"/v1/withdrawals/{wid}/approve"),
                await client.post(f"/v1/withdrawals/{wid}/reject", json={"reason": "no"}),
                await client.post("/v1/deposits/dep_nothing/approve"),
                await client.post(
                    "/v1/recon/cases/1/resolve", json={"action": "write_off", "note": "x"}
                ),
            ]
            for response in decisions:
                assert (response.status_code, response.json()["code"]) == (
                    403,
                    "operator_required",
                ), response.text
            # Reading is not deciding: the key still reads the queue.
            assert (await client.get(f"/v1/withdrawals/{wid}")).status_code == 200

    async with sessions.begin() as session:
        operator_id = await operators.operator_id_of_key(session, key_id=leaving.holder.key_id)
        assert operator_id is not None
        assert await operators.deactivate_operator(session, operator_id=operator_id) == 1
    assert (await _approve(app, leaving.secret, wid)).status_code == 401  # the key is revoked
    async with sessions.begin() as session:  # even if someone un-revokes it by hand
        await session.execute(
            text("UPDATE api_keys SET revoked_at = NULL WHERE id = :id"),
            {"id": leaving.holder.key_id},
        )
    refused = await _approve(app, leaving.secret, wid)
    assert (refused.status_code, refused.json()["code"]) == (403, "operator_required")

    shown = (await api.get(f"/v1/withdrawals/{wid}")).json()
    assert (shown["status"], shown["reviews"]) == ("in_review", [])


async def test_the_requester_of_a_resolution_cannot_approve_it_with_another_key(
    app: FastAPI, sessions: Sessions, settings: Settings
) -> None:
    from tests.test_recon_cases import open_case, provider_name, resolve

    async with sessions.begin() as session:
        operator_key = await person_key(session, "Marat")
        person = await operators.operator_id_of_key(session, key_id=operator_key.holder.key_id)
        assert person is not None
        admin_key = await person_key(session, "Marat (admin)", role=Role.ADMIN, operator_id=person)
        other = await person_key(session, "Saule")
    big = settings.recon_four_eyes_from_minor
    case_id = await open_case(
        sessions, provider=provider_name(), kind="unknown_reference", amount=big, park=big
    )
    async with (
        _client(app, operator_key.secret) as marat,
        _client(app, admin_key.secret) as marat_admin,
        _client(app, other.secret) as saule,
    ):
        requested = await resolve(marat, case_id, "write_off", "nobody claims it")
        assert requested.status_code == 202, requested.text
        assert [(a["operator_id"], a["operator_name"]) for a in requested.json()["approvals"]] == [
            (person, "Marat")
        ]
        own = await resolve(marat_admin, case_id, "write_off", "approving my own")
        assert (own.status_code, own.json()["code"]) == (409, "same_operator"), own.text
        done = await resolve(saule, case_id, "write_off", "agreed")
    assert done.status_code == 200, done.text
    case = done.json()
    assert case["status"] == "resolved"
    assert [(a["step"], a["actor_name"]) for a in case["actions"]] == [
        ("approve", "Marat"),
        ("execute", "Saule"),
    ]
    assert all(a["actor_id"].startswith("op_") for a in case["actions"])


async def test_an_approval_recorded_under_a_key_before_operators_existed_is_the_persons(
    app: FastAPI,
    api: httpx.AsyncClient,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    sessions: Sessions,
    settings: Settings,
) -> None:
    """Before migration 0200 decisions were recorded under the key's id. Such a first approval
    is its person's: their second approval, now by person, does not make four eyes."""
    from tests.test_recon_cases import open_case, provider_name, resolve

    async with sessions.begin() as session:
        key = await person_key(session, "Nurlan")
    withdrawal = await withdrawal_in_review(api, sessions, settings.withdrawal_four_eyes_from_minor)
    handle = temporal_client.get_workflow_handle(withdrawal["workflow_id"])
    legacy = await signed(  # what the API sent before: the key's id as the actor
        ReviewInput(actor_id=key.holder.key_id, actor_name="Nurlan"),
        settings=settings,
        env=temporal_env,
        workflow_id=handle.id,
        decision="approve",
    )
    await handle.execute_update(WithdrawalWorkflow.approve, legacy)
    again = await _approve(app, key.secret, withdrawal["id"])
    assert (again.status_code, again.json()["status"]) == (200, "in_review"), again.text
    assert [r["operator_id"] for r in again.json()["reviews"]] == [key.holder.key_id]

    big = settings.recon_four_eyes_from_minor
    case_id = await open_case(
        sessions, provider=provider_name(), kind="unknown_reference", amount=big, park=big
    )
    async with _client(app, key.secret) as nurlan:
        first = await resolve(nurlan, case_id, "write_off", "nobody claims it")
        assert first.status_code == 202, first.text
        async with sessions.begin() as session:  # as it was recorded before: under the key
            await session.execute(
                text(
                    "UPDATE recon_cases SET approvals = jsonb_set(approvals, '{0,operator_id}', "
                    "to_jsonb(CAST(:key AS text))) WHERE id = :id"
                ),
                {"key": key.holder.key_id, "id": case_id},
            )
        own = await resolve(nurlan, case_id, "write_off", "again")
    assert (own.status_code, own.json()["code"]) == (409, "same_operator"), own.text
