"""`GET /v1/analytics/summary` against hand-computed figures (see tests/analytics_helpers.py)."""

from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.analytics_helpers import insert_fixture

BASE = date(2001, 3, 1)
WINDOW = {"from": "2001-03-01T00:00:00Z", "to": "2001-03-03T00:00:00Z"}


@pytest.fixture(scope="module")
async def fixture_rows(sessions: async_sessionmaker[AsyncSession]) -> None:
    await insert_fixture(sessions, BASE)


async def _summary(api: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await api.get("/v1/analytics/summary", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_totals_are_exact(fixture_rows: None, operator_api: httpx.AsyncClient) -> None:
    body = await _summary(operator_api)
    assert body["from"] == "2001-03-01T00:00:00Z"
    assert body["groups"] == []
    totals = body["totals"]
    dep = totals["deposits"]
    assert dep["count"] == 6
    assert dep["by_status"] == {"succeeded": 3, "declined": 1, "failed": 1, "processing": 1}
    assert dep["succeeded"] == 3
    assert dep["volume_minor"] == 420_001
    assert dep["attempted_volume_minor"] == 520_001
    assert dep["average_minor"] == 140_000  # 420001 // 3
    assert dep["approval_rate"] == 0.6  # 3 of 5 finished
    assert dep["median_seconds_to_complete"] == 30.0  # of 10, 30, 90
    assert dep["p95_seconds_to_complete"] == 84.0  # 30 + 0.9 * (90 - 30)
    assert dep["first_time_depositors"] == 2  # B and C; A deposited before
    assert dep["fraud_hits"] == 2
    assert dep["unsuccessful_reasons"] == [
        {"status": "declined", "reason": "risk: velocity", "count": 1},
        {"status": "failed", "reason": "insufficient_funds", "count": 1},
    ]
    wd = totals["withdrawals"]
    assert wd["count"] == 3
    assert wd["by_status"] == {"paid": 1, "rejected": 1, "in_review": 1}
    assert wd["paid_volume_minor"] == 60_000
    assert wd["requested_volume_minor"] == 110_000
    assert wd["approval_rate"] == 0.5
    assert wd["median_seconds_to_pay"] == 120.0
    assert wd["p95_seconds_to_pay"] == 120.0
    assert wd["fraud_hits"] == 2
    assert wd["unsuccessful_reasons"] == [
        {"status": "rejected", "reason": "operator: suspicious", "count": 1}
    ]
    assert totals["net_deposits_minor"] == 360_001
    assert totals["fraud_hits"] == 4


async def test_group_by_method(fixture_rows: None, operator_api: httpx.AsyncClient) -> None:
    groups = {g["key"]: g for g in (await _summary(operator_api, group_by="method"))["groups"]}
    assert set(groups) == {"card", "ewallet", "bank_transfer"}
    card, ewallet, bank = groups["card"], groups["ewallet"], groups["bank_transfer"]
    assert card["deposits"]["count"] == 4
    assert card["deposits"]["volume_minor"] == 350_001
    assert card["deposits"]["approval_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert card["deposits"]["first_time_depositors"] == 1
    assert card["deposits"]["median_seconds_to_complete"] == 20.0
    assert card["net_deposits_minor"] == 290_001
    assert ewallet["deposits"]["volume_minor"] == 70_000
    assert ewallet["deposits"]["average_minor"] == 70_000
    assert ewallet["deposits"]["first_time_depositors"] == 1
    assert ewallet["withdrawals"]["by_status"] == {"in_review": 1}
    assert ewallet["net_deposits_minor"] == 70_000
    assert ewallet["fraud_hits"] == 2
    assert bank["deposits"]["count"] == 0
    assert bank["deposits"]["approval_rate"] is None
    assert bank["withdrawals"]["approval_rate"] == 0.0
    assert bank["net_deposits_minor"] == 0


async def test_group_by_day_and_provider(
    fixture_rows: None, operator_api: httpx.AsyncClient
) -> None:
    days = {g["key"]: g for g in (await _summary(operator_api, group_by="day"))["groups"]}
    assert list(days) == ["2001-03-01", "2001-03-02"]
    assert days["2001-03-01"]["deposits"]["volume_minor"] == 350_001
    assert days["2001-03-01"]["net_deposits_minor"] == 290_001
    assert days["2001-03-02"]["deposits"]["by_status"] == {
        "succeeded": 1,
        "failed": 1,
        "processing": 1,
    }
    assert days["2001-03-02"]["net_deposits_minor"] == 70_000
    providers = {g["key"]: g for g in (await _summary(operator_api, group_by="provider"))["groups"]}
    assert set(providers) == {"halyk", "kaspi", "kzbank"}
    assert providers["halyk"]["withdrawals"]["paid_volume_minor"] == 60_000
    assert providers["kaspi"]["deposits"]["unsuccessful_reasons"] == [
        {"status": "failed", "reason": "insufficient_funds", "count": 1}
    ]
    assert providers["kzbank"]["withdrawals"]["median_seconds_to_pay"] is None


async def test_empty_window_and_bad_input(operator_api: httpx.AsyncClient) -> None:
    body = await _summary(operator_api, **{"from": "1990-01-01T00:00:00Z", "to": "1990-01-02"})
    assert body["totals"]["deposits"]["count"] == 0
    assert body["totals"]["net_deposits_minor"] == 0
    backwards = await operator_api.get(
        "/v1/analytics/summary", params={"from": "2001-03-03T00:00:00Z", "to": "2001-03-01"}
    )
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "invalid_range"
    bad_group = await operator_api.get("/v1/analytics/summary", params={"group_by": "player"})
    assert bad_group.status_code == 422


async def test_roles(api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/analytics/summary")).status_code == 403
    assert (await anonymous_api.get("/v1/analytics/summary")).status_code == 401
