"""Behaviour metrics, segments and the player profile against hand-computed values."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.fraud_models import DepositLimit
from db.models import Deposit, Player, Withdrawal
from tests.analytics_helpers import DECLINE, _deposit, _player, _withdrawal
from tests.test_analytics_rollups import _assert_rollups_exact


async def _segments(api: httpx.AsyncClient, **params: str) -> dict[str, dict[str, Any]]:
    response = await api.get("/v1/analytics/segments", params=params)
    assert response.status_code == 200, response.text
    return {s["segment"]: s for s in response.json()["data"]}


async def test_metrics_segments_and_profile(
    sessions: async_sessionmaker[AsyncSession],
    operator_api: httpx.AsyncClient,
    api: httpx.AsyncClient,
) -> None:
    vip = {"vip_net_deposits_minor": str(10**12)}
    before = await _segments(operator_api, **vip)
    now = datetime.now(UTC)
    day = timedelta(days=1)
    x, y, z, w = _player(), _player(), _player(), _player()
    rows: list[Any] = []
    # x: active, not new; one declined (flagged) deposit; one paid withdrawal.
    rows += _deposit(x, at=now - 2 * day, amount=10_000, status="succeeded")
    rows += _deposit(x, at=now - 10 * day, amount=20_000, status="succeeded", method="ewallet")
    rows += _deposit(x, at=now - 40 * day, amount=30_000, status="succeeded")
    rows += _deposit(x, at=now - day, amount=5_000, status="declined", risk=DECLINE)
    rows += _withdrawal(x, at=now - 3 * day, amount=15_000, status="paid")
    # y: new, active and VIP.
    rows += _deposit(y, at=now - day, amount=2 * 10**12, status="succeeded")
    # z: three deposits 50-60 days ago: at risk of churn.
    for back in (50, 55, 60):
        rows += _deposit(z, at=now - back * day, amount=1_000, status="succeeded")
    # w: dormant, and two deposits the risk engine declined: high risk.
    rows += _deposit(w, at=now - 100 * day, amount=1_000, status="succeeded")
    rows += _deposit(w, at=now - 99 * day, amount=1_000, status="declined", risk=DECLINE)
    rows += _deposit(w, at=now - 98 * day, amount=1_000, status="declined", risk=DECLINE)
    async with sessions.begin() as session:
        session.add_all([x, y, z, w])
        await session.flush()
        session.add_all(rows)
    await _assert_rollups_exact(sessions)

    after = await _segments(operator_api, **vip)
    grew = {name: after[name]["players"] - before[name]["players"] for name in after}
    assert grew == {
        "new": 1,
        "active": 2,
        "at_risk_of_churn": 1,
        "dormant": 1,
        "vip": 1,
        "high_risk": 1,
    }
    assert after["vip"]["players"] == 1
    assert after["vip"]["deposits_minor"] == 2 * 10**12
    assert after["dormant"]["net_deposits_minor"] - before["dormant"]["net_deposits_minor"] == 1_000

    response = await operator_api.get(f"/v1/players/{x.id}/profile")
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["identity"]["full_name"] == "A******** F******"
    assert profile["identity"]["iin"] == "90********00"
    b = profile["behaviour"]
    assert b["deposit_count"] == 3
    assert b["deposits_minor"] == 60_000
    assert b["deposits"] == {
        "7d": {"count": 1, "amount_minor": 10_000},
        "30d": {"count": 2, "amount_minor": 30_000},
        "90d": {"count": 3, "amount_minor": 60_000},
    }
    assert b["average_deposit_minor"] == 20_000
    assert b["withdrawals_minor"] == 15_000
    assert b["net_deposits_minor"] == 45_000
    assert b["withdrawal_ratio"] == 0.25
    assert b["flagged_deposits"] == 1
    assert b["active_days"] == 3
    assert b["deposits_per_30_days"] == round(3 * 30 / 39, 2)  # 38 days from first to last, + 1
    assert sum(b["hour_of_day"]) == 3
    assert datetime.fromisoformat(b["first_deposit_at"]) == now - 40 * day
    assert datetime.fromisoformat(b["last_deposit_at"]) == now - 2 * day
    methods = {(p["kind"], p["method"], p["status"]): p for p in profile["payments_by_method"]}
    assert methods[("deposit", "card", "succeeded")]["count"] == 2
    assert methods[("deposit", "ewallet", "succeeded")]["amount_minor"] == 20_000
    assert methods[("withdrawal", "card", "paid")]["amount_minor"] == 15_000
    assert profile["linked_accounts"] == [
        {"player_id": p.id, "link": "iin"} for p in sorted([y, z, w], key=lambda p: p.id)
    ] or all(link["link"] == "iin" for link in profile["linked_accounts"])

    assert (await operator_api.get("/v1/players/pl_nobody/profile")).status_code == 404
    assert (await api.get(f"/v1/players/{x.id}/profile")).status_code == 403
    assert (await api.get("/v1/analytics/segments")).status_code == 403


async def test_cohorts_funnel_and_harm_markers(
    sessions: async_sessionmaker[AsyncSession], operator_api: httpx.AsyncClient
) -> None:
    # A currency of their own (ISO 4217's test code), so other tests' payments never count.
    currency = "XTS"
    almaty = ZoneInfo("Asia/Almaty")
    today = datetime.now(almaty).date()
    this_month = datetime(today.year, today.month, 1, 12, tzinfo=almaty)
    previous = (this_month - timedelta(days=1)).replace(day=2)
    a, b, h = _player(), _player(), _player()
    rows: list[Any] = []

    def deposit(player: Player, at: datetime, amount: int) -> None:
        for row in _deposit(player, at=at.astimezone(UTC), amount=amount, status="succeeded"):
            if isinstance(row, Deposit):
                row.currency = currency
            rows.append(row)

    deposit(a, previous, 1_000)
    deposit(a, this_month, 2_000)
    deposit(b, this_month, 5_000)
    for row in _withdrawal(b, at=this_month.astimezone(UTC), amount=300, status="paid"):
        if isinstance(row, Withdrawal):
            row.currency = currency
        rows.append(row)
    # h: four deposits at night (Almaty), each larger than the one before; a limit raised.
    night = this_month.replace(hour=1)
    for n in range(4):
        deposit(h, night + timedelta(hours=n), 1_000 * (n + 1))
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        session.add_all([a, b, h])
        await session.flush()
        session.add_all(rows)
        for amount, back in ((10_000, 10), (50_000, 5)):
            session.add(
                DepositLimit(
                    player_id=h.id,
                    period="daily",
                    amount_minor=amount,
                    currency=currency,
                    effective_from=now - timedelta(days=back),
                )
            )
    await _assert_rollups_exact(sessions)

    response = await operator_api.get(
        "/v1/analytics/cohorts", params={"currency": currency, "months": "3"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    cohorts = {c["cohort"]: c for c in body["cohorts"]}
    prev_key, this_key = previous.strftime("%Y-%m"), this_month.strftime("%Y-%m")
    assert cohorts[prev_key]["players"] == 1
    assert [
        (m["month"], m["months_after"], m["depositors"], m["retention"], m["deposits_minor"])
        for m in cohorts[prev_key]["months"]
    ] == [(prev_key, 0, 1, 1.0, 1_000), (this_key, 1, 1, 1.0, 2_000)]
    assert cohorts[prev_key]["months"][-1]["cumulative_deposits_minor"] == 3_000
    assert cohorts[this_key]["players"] == 2  # b and h
    first = cohorts[this_key]["months"][0]
    assert first["deposits_minor"] == 5_000 + 10_000
    assert first["net_minor"] == 5_000 + 10_000 - 300
    funnel = body["funnel"]
    assert (funnel["first_deposit"], funnel["second_deposit"]) == (3, 2)  # a, b, h; a and h
    assert funnel["registered"] >= 3

    profile = (
        await operator_api.get(f"/v1/players/{h.id}/profile", params={"currency": currency})
    ).json()
    markers = {m["marker"]: m["evidence"] for m in profile["harm_markers"]}
    assert markers["deposit_escalation"]["amounts_minor"] == [1_000, 2_000, 3_000, 4_000]
    assert markers["night_deposits"]["night_deposits"] == 4
    assert markers["limit_increases"]["changes"][0]["to_minor"] == 50_000
    assert "chasing" not in markers
    calm = await operator_api.get(f"/v1/players/{a.id}/profile", params={"currency": currency})
    assert calm.json()["harm_markers"] == []
    listed = await operator_api.get("/v1/analytics/harm-markers", params={"currency": currency})
    assert listed.status_code == 200, listed.text
    assert [p["player_id"] for p in listed.json()["data"]] == [h.id]
