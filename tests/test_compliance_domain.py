"""The compliance rules as plain code, and the ports' HTTP adapters against canned answers."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from domain.cards import card_product, luhn_valid
from domain.compliance import credit
from domain.compliance.deadlines import deadline_state, payout_deadline
from domain.compliance.esu import (
    EsuAuthorization,
    EsuOperation,
    EsuRejected,
    EsuUnavailable,
    monthly_limit_left,
)
from domain.compliance.exclusions import (
    Listing,
    Register,
    RegistryAnswer,
    RegistryUnavailable,
    age_exclusion,
    register_exclusion,
    self_exclusion_term_problem,
)
from domain.compliance.monitoring import PaidOut, Thresholds, split_series
from domain.compliance.responsible import cool_off_problem
from providers.esu import HttpUnifiedAccounting
from providers.registers import CachedExclusionRegistry, HttpExclusionRegistry
from tests.conftest import make_iin

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
KZT = Thresholds.in_kzt(1_000_000, 7)


def test_make_iin_gives_a_new_person_every_time() -> None:
    issued = {make_iin() for _ in range(200)}
    assert len(issued) == 200


@pytest.mark.parametrize(
    ("register", "stage", "code"),
    [
        (Register.SELF_EXCLUSION, "registration", "self_excluded"),
        (Register.SELF_EXCLUSION, "deposit", "self_excluded"),
        (Register.SELF_EXCLUSION, "withdrawal", None),  # their own balance goes back to them
        (Register.DEBTORS, "deposit", "debtor_excluded"),
        (Register.DEBTORS, "withdrawal", "debtor_excluded"),
        (Register.CIVIL_SERVANTS, "registration", "civil_servant_excluded"),
        (Register.MILITARY, "deposit", "military_excluded"),
    ],
)
def test_each_register_has_its_code_and_its_stages(
    register: Register, stage: Any, code: str | None
) -> None:
    answer = RegistryAnswer(iin="x", listings=(Listing(register, "r", date(2026, 1, 1)),))
    found = register_exclusion(answer, stage=stage)
    assert (found.code if found else None) == code
    assert register_exclusion(RegistryAnswer(iin="x"), stage=stage) is None


def test_under_21_by_the_iin() -> None:
    today = date(2026, 6, 1)
    assert age_exclusion(make_iin("050602", 5), today=today) is not None  # 21 only tomorrow
    assert age_exclusion(make_iin("050601", 5), today=today) is None  # 21 today
    found = age_exclusion(make_iin("100101", 5), today=today)
    assert found is not None
    assert found.code == "underage"


def test_a_self_exclusion_runs_six_months_to_ten_years() -> None:
    start = date(2026, 1, 1)
    assert self_exclusion_term_problem(start, None)
    assert self_exclusion_term_problem(start, start + timedelta(days=100))
    assert self_exclusion_term_problem(start, start + timedelta(days=183)) is None
    assert self_exclusion_term_problem(start, start + timedelta(days=3653)) is None
    assert self_exclusion_term_problem(start, start + timedelta(days=3700))


@pytest.mark.parametrize(
    ("requested", "deadline"),
    [
        # 12:00 UTC is 17:00 in Kazakhstan: days 11, 12, 13 count; due at midnight into the 14th.
        ("2026-03-10T12:00:00+00:00", "2026-03-13T19:00:00+00:00"),
        # 20:30 UTC is already the 11th in Kazakhstan.
        ("2026-03-10T20:30:00+00:00", "2026-03-14T19:00:00+00:00"),
        ("2026-12-31T18:59:59+00:00", "2027-01-03T19:00:00+00:00"),
    ],
)
def test_the_payout_deadline_is_the_end_of_the_third_calendar_day(
    requested: str, deadline: str
) -> None:
    assert payout_deadline(datetime.fromisoformat(requested)) == datetime.fromisoformat(deadline)


def test_deadline_states() -> None:
    due = T0 + timedelta(days=3)
    now = T0
    assert deadline_state(due, status="in_review", paid_at=None, now=now) == "on_time"
    assert deadline_state(due, status="in_review", paid_at=None, now=due - timedelta(hours=2)) == (
        "due_soon"
    )
    assert deadline_state(due, status="approved", paid_at=None, now=due) == "overdue"
    assert deadline_state(due, status="paid", paid_at=due, now=now) == "paid_in_time"
    assert deadline_state(due, status="paid", paid_at=due + timedelta(seconds=1), now=now) == (
        "paid_late"
    )
    assert deadline_state(due, status="rejected", paid_at=None, now=due) == "closed"
    assert deadline_state(None, status="pending", paid_at=None, now=now) is None


def _paid(name: str, kzt: int, days: float) -> PaidOut:
    return PaidOut(name, kzt * 100, T0 + timedelta(days=days))


def test_three_payouts_of_400k_within_a_week_are_a_split_series() -> None:
    first, second, third = _paid("a", 400_000, 0), _paid("b", 400_000, 3), _paid("c", 400_000, 6)
    assert split_series(second, [first], KZT) is None  # 800,000: not yet
    assert split_series(third, [first, second], KZT) == (first, second, third)
    # Screened in another order (the last payout's screening ran first): the same series.
    assert split_series(first, [third, second], KZT) == (first, second, third)


def test_no_series_beyond_the_window_or_over_the_threshold_alone() -> None:
    early, late = _paid("a", 600_000, 0), _paid("b", 600_000, 7.5)
    assert split_series(late, [early], KZT) is None  # 7.5 days apart
    big = _paid("c", 1_200_000, 1)
    assert split_series(big, [early], KZT) is None  # a threshold report, not a split one
    assert split_series(_paid("d", 500_000, 2), [big], KZT) is None  # big is not a piece
    assert split_series(_paid("e", 999_999, 0), [], KZT) is None


def test_the_esu_monthly_limit_counts_the_larger_of_its_figure_and_ours() -> None:
    assert monthly_limit_left(EsuAuthorization(allowed=True), ours_this_month=5) is None
    limited = EsuAuthorization(allowed=True, monthly_limit_minor=1000, month_used_minor=300)
    assert monthly_limit_left(limited, ours_this_month=100) == 700
    assert monthly_limit_left(limited, ours_this_month=900) == 100
    assert monthly_limit_left(limited, ours_this_month=5000) == 0


def test_credit_cards_by_bin_and_credit_funding_by_the_provider() -> None:
    assert luhn_valid("4012888888881881")
    assert luhn_valid("5105105105105100")
    assert card_product("401288") == "credit"
    assert credit.card_is_credit("510510")
    assert credit.card_is_credit("378282")  # a charge card is credit money too
    assert not credit.card_is_credit("424242")
    assert not credit.card_is_credit("440563")  # not listed: not known to be credit
    assert not credit.card_is_credit(None)
    red = {"product_type": "Red", "loan_offer_name": "0-0-3", "financed": True}
    assert credit.funding_is_credit(red)
    assert credit.funding_label(red) == "Red 0-0-3"
    assert not credit.funding_is_credit({"product_type": "Gold", "financed": False})
    assert not credit.funding_is_credit(None)


def test_a_cool_off_lasts_24_hours_to_6_weeks() -> None:
    assert cool_off_problem(T0 + timedelta(hours=23), now=T0)
    assert cool_off_problem(T0 + timedelta(hours=24), now=T0) is None
    assert cool_off_problem(T0 + timedelta(weeks=6), now=T0) is None
    assert cool_off_problem(T0 + timedelta(weeks=6, hours=1), now=T0)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def check(self, iin: str) -> RegistryAnswer:
        self.calls += 1
        if self.fail:
            raise RegistryUnavailable("down")
        return RegistryAnswer(iin=iin)


async def test_the_register_cache_keeps_answers_briefly_and_never_failures() -> None:
    inner, clock = _Counting(), [0.0]
    cached = CachedExclusionRegistry(inner, ttl_seconds=60, clock=lambda: clock[0])
    await cached.check("1")
    await cached.check("1")
    assert inner.calls == 1
    clock[0] = 61
    await cached.check("1")
    assert inner.calls == 2
    inner.fail = True
    with pytest.raises(RegistryUnavailable):
        await cached.check("2")
    with pytest.raises(RegistryUnavailable):
        await cached.check("2")
    assert inner.calls == 4  # a failure is asked again
    uncached = CachedExclusionRegistry(_Counting(), ttl_seconds=0)
    await uncached.check("3")
    await uncached.check("3")


def _registry(handler: Any) -> HttpExclusionRegistry:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpExclusionRegistry(http=http, base_url="http://r", secret="s", timeout_seconds=1)


async def test_the_register_adapter_reads_listings_and_fails_on_anything_else() -> None:
    iin = make_iin()

    def listed(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer s"
        assert request.url.path == f"/v1/persons/{iin}"
        body = {
            "iin": iin,
            "listings": [{"register": "debtors", "reason": "court", "listed_from": "2026-01-01"}],
            "checked_at": "2026-03-10T12:00:00+00:00",
        }
        return httpx.Response(200, json=body)

    answer = await _registry(listed).check(iin)
    assert [item.register for item in answer.listings] == [Register.DEBTORS]
    for response in (
        httpx.Response(503, json={"code": "unavailable"}),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"iin": "000000000000", "listings": []}),  # about someone else
        httpx.Response(200, json={"iin": iin, "listings": [{"register": "unknown"}]}),
    ):
        with pytest.raises(RegistryUnavailable):
            await _registry(lambda _request, r=response: r).check(iin)

    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RegistryUnavailable):
        await _registry(dropped).check(iin)


def _esu(status: int, body: Any) -> HttpUnifiedAccounting:
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _request: httpx.Response(status, json=body))
    )
    return HttpUnifiedAccounting(
        http=http, base_url="http://esu", secret="s", operator_id="op", timeout_seconds=1
    )


async def test_the_esu_adapter_tells_a_refusal_from_an_outage() -> None:
    operation = EsuOperation(
        operation_id="deposit:dep_1",
        kind="deposit",
        iin=make_iin(),
        amount_minor=100,
        currency="KZT",
        method="card",
        provider="halyk",
        occurred_at=T0,
        payment_id="dep_1",
    )
    receipt = await _esu(201, {"receipt_id": "r1", "duplicate": False}).report(operation)
    assert receipt.receipt_id == "r1"
    with pytest.raises(EsuRejected) as refused:
        await _esu(409, {"code": "operation_conflict", "detail": "x"}).report(operation)
    assert refused.value.code == "operation_conflict"
    for status in (429, 500, 503):
        with pytest.raises(EsuUnavailable):
            await _esu(status, {}).report(operation)
    with pytest.raises(EsuUnavailable):
        await _esu(200, {"decision": "maybe"}).authorize(
            iin=operation.iin, amount_minor=1, currency="KZT", payment_id="dep_1"
        )
    answer = await _esu(
        200, {"decision": "refused", "reason": "debtor", "monthly_limit_minor": None}
    ).authorize(iin=operation.iin, amount_minor=1, currency="KZT", payment_id="dep_1")
    assert (answer.allowed, answer.reason) == (False, "debtor")
