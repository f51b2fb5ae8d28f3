"""The chaos command's CI subset: a small run of `python -m bench.chaos` with the short fault
schedule (duplicated and same-event repeated callbacks, charges and payouts processed then
answered 5xx or cut off, charges held in the network past the timeout with cancels answered 404,
throttling, expired credentials, halyk down and back, late answers from freedom, slow
payouts, one worker SIGKILL, dropped callbacks, one PostgreSQL restart; bank statement lines
short then topped up and after the deposit failed; an e-wallet order paid after it expired)
must lose nothing, charge and pay out nothing twice, drop no late payment, apply every fault,
and keep the ledger and every wallet balanced; that day's reconciliation, run for each provider
at the end, must leave every provider's clearing at zero or explained by open cases.
`--self-test` plants breaches and must see each reported. The full run (1,000 payments):
`make chaos`."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bench.chaos import (
    CHECKS,
    Chaos,
    FaultNotApplied,
    Faults,
    Payment,
    Player,
    Tally,
    breaches,
    schedule,
)
from bench.chaos_checks import (
    ClearingDay,
    Held,
    LateCase,
    Money,
    OpenPayment,
    clearing_table,
    judge_clearing,
    judge_money,
    judge_open,
    names_something,
)
from config import Settings
from simulator.connectors import plugins
from stack.launcher import Stack

ROOT = Path(__file__).resolve().parent.parent


def _chaos(
    tmp_path: Path, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    report_file = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            *args,
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
            str(report_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = run.stdout[-8000:] + run.stderr[-3000:]
    assert report_file.exists(), output
    return run, json.loads(report_file.read_text()), output


@pytest.mark.fullstack
def test_small_chaos_run_loses_nothing_and_keeps_the_books(tmp_path: Path) -> None:
    run, report, output = _chaos(
        tmp_path,
        "--payments",
        "40",
        "--players",
        "10",
        "--rate",
        "2",
        "--concurrency",
        "8",
        "--faults",
        "short",
        "--settle-timeout",
        "90",
        timeout=300,
    )
    assert breaches(report) == [], output
    assert run.returncode == 0, output

    assert report["accepted"] == report["submitted"] == 50  # 40 + one funding deposit per player
    for check in CHECKS:
        assert report[check] == [], (check, output)
    assert all(verdict == "ok" for verdict in report["ledger_invariants"].values())
    faults = " | ".join(report["faults"])
    for fault in (
        "SIGKILL worker",
        "halyk DOWN",
        "halyk back up",
        "after the timeout",
        "duplicated",
        "same event id",
        "then answers 502",
        "then answers 504",
        "then drops the connection",
        "land 8 s late; a cancel of an unknown reference answers 404",
        "429, Retry-After",
        "401 token_expired",
        "payouts stay processing",
        "reports expired/cancelled orders paid",
        "DROPPED",
        "PostgreSQL back",
    ):
        assert fault in faults, (fault, faults)
    # Bank statement lines and late money really happened, and the platform took each late
    # payment up (a case, the deposit credited once: the checks above).
    lines = report["statement_lines"]
    assert lines.get("short, then topped up") == 1, lines
    assert any(k.startswith("late after the deposit was") for k in lines), lines
    assert report["late_money"], report["late_money"]
    assert report["late_payments_made"] >= 2
    assert report["late_payments_endpoint"] == "ok"
    assert report["by_method"]["deposit bank_short"] == {"succeeded": 1}, report["by_method"]
    # Whatever is still open (at least the bank transfer the player never makes) is listed by
    # /v1/ops/stuck with a real reason.
    assert report["open_on_purpose"] >= 1
    assert report["open"] == report["open_on_purpose"] == len(report["stuck_listed"])
    # Both kinds of payments and the player's and operator's parts really ran.
    assert any(k.startswith("deposit:succeeded") for k in report["final_status"])
    assert any(k.startswith("withdrawal:") for k in report["final_status"])
    assert report["player_actions"], report
    # That day's reconciliation ran for every provider the run used (the card acquirers and
    # the bank among them), each run finished, and every provider's clearing is settled to
    # zero or explained by the open cases' money.
    assert report["unexplained_clearing"] == [], output
    days = {row["provider"]: row for row in report["clearing"]}
    assert {"halyk", "freedom", "kazbank"} <= set(days), days
    assert {p.split()[0] for p in report["reconciliation"]} >= set(days), report["reconciliation"]
    for provider, row in days.items():
        assert row["reconciled"].startswith("completed"), (provider, row)
        assert row["clearing"] == 0, (provider, row)
        assert row["difference"] == -row["outstanding_held"], (provider, row)
    assert "clearing after the day's reconciliation" in output


@pytest.mark.fullstack
def test_self_test_sees_every_planted_breach(tmp_path: Path) -> None:
    run, report, output = _chaos(tmp_path, "--self-test", timeout=300)
    assert run.returncode == 0, output
    assert "SELF-TEST: PASS (10/10 planted breaches reported)" in run.stdout, output
    caught = {p["name"][:3]: set(p["caught_by"]) for p in report["self_test"]}
    assert caught == {
        "(a)": {"double_charges"},
        "(b)": {"ledger_postings_wrong", "wallets_wrong"},
        "(c)": {"open_without_reason"},
        "(d)": {"double_payouts"},
        "(e)": {"faults_failed"},
        "(f)": {"dropped_late_payments"},
        "(g)": {"lost"},
        "(h)": {"payout_mismatch"},
        "(i)": {"open_without_reason"},
        "(j)": {"unexplained_clearing"},
    }, output
    echoed = next(p for p in report["self_test"] if p["name"].startswith("(i)"))
    assert "says nothing" in echoed["caught_by"]["open_without_reason"], output
    # The run itself fails, as it should with those breaches in it.
    assert {found.split(":")[0] for found in breaches(report)} >= {
        "lost",
        "double_charges",
        "double_payouts",
        "payout_mismatch",
        "dropped_late_payments",
        "ledger_postings_wrong",
        "wallets_wrong",
        "open_without_reason",
        "faults_failed",
        "unexplained_clearing",
    }, output


# -- the detectors detect: fabricated provider logs and postings, no stack -----------------------


def _payment(kind: str, method: str, status: str, ident: str, **extra: Any) -> Payment:
    player = Player(id="pl_1", phone="+77011234567", card="4242424242424242", vip=False)
    payment = Payment(kind, method, player, 100_000, label=method, id=ident, status=status)
    for name, value in extra.items():
        setattr(payment, name, value)
    return payment


def _held(provider: str, kind: str, status: str, amount: int = 100_000, **extra: Any) -> Any:
    moved = status in ("succeeded", "paid")
    return {
        "provider": provider,
        "kind": kind,
        "status": status,
        "money_moved": moved,
        "amount": amount,
        "currency": "KZT",
        **extra,
    }


async def test_money_checks_read_every_provider_under_the_reference() -> None:
    """Through `GET /admin/charges?reference=`: money moved at any provider counts."""
    held: dict[str, list[Any]] = {
        "dep_twice": [
            _held("halyk", "charge", "succeeded"),
            _held("freedom", "charge", "succeeded"),
        ],
        "dep_failed_but_charged": [_held("halyk", "charge", "succeeded")],
        "dep_ok": [_held("halyk", "charge", "succeeded")],
        "dep_declined": [_held("halyk", "charge", "declined")],
        "dep_credited_unpaid": [_held("halyk", "charge", "declined")],
        "wd_rejected_but_paid": [_held("kazbank", "payout", "paid")],
        "wd_paid": [_held("kazbank", "payout", "paid")],
        "wd_paid_twice": [_held("kazbank", "payout", "paid"), _held("freedom", "payout", "paid")],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/admin/charges"
        return httpx.Response(200, json=held.get(request.url.params["reference"], []))

    chaos = Chaos.__new__(Chaos)
    payments = [
        _payment("deposit", "card", "succeeded", "dep_twice", provider="halyk"),
        _payment("deposit", "card", "failed", "dep_failed_but_charged", provider="halyk"),
        _payment("deposit", "card", "succeeded", "dep_ok", provider="halyk"),
        _payment("deposit", "card", "failed", "dep_declined", provider="halyk"),
        _payment("deposit", "card", "succeeded", "dep_credited_unpaid", provider="halyk"),
        _payment("withdrawal", "bank_transfer", "rejected", "wd_rejected_but_paid"),
        _payment("withdrawal", "bank_transfer", "paid", "wd_paid", provider="kazbank"),
        _payment("withdrawal", "bank_transfer", "paid", "wd_paid_twice", provider="kazbank"),
    ]
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://sim"
    ) as sim:
        chaos.sim = sim
        found = Chaos.check_provider_money(
            payments, await chaos.load_held(payments, asyncio.Semaphore(4)), {}
        )

    def ids(check: str) -> list[str]:
        return [line.split(":")[0] for line in found[check]]

    assert ids("double_charges") == ["dep_twice"]
    assert ids("dropped_late_payments") == ["dep_failed_but_charged"]
    assert ids("charge_mismatch") == ["dep_credited_unpaid"]
    assert ids("payout_mismatch") == ["wd_rejected_but_paid"]
    assert ids("double_payouts") == ["wd_paid_twice"]
    assert found["late_payments_wrong"] == []


def _money(ident: str, status: str, provider: str | None = "kazbank") -> Money:
    terminal = status not in ("pending", "requires_action", "processing")
    return Money(ident, "deposit", status, terminal, provider, 100_000)


def _case(deposit: str, resolution: str, provider: str = "kazbank") -> LateCase:
    return LateCase(deposit, provider, 100_000, "KZT", "credit", resolution)


def test_late_money_needs_a_case_resolved_once() -> None:
    paid = [Held("kazbank", "payment", "succeeded", True, 100_000, "KZT")]
    found = judge_money(
        [
            _money("late_credited", "succeeded"),  # expired, paid late, credited by its case
            _money("late_dropped", "expired"),  # paid late, nobody took it up
            _money("late_open_case", "expired"),  # a case, never resolved
            _money("late_refunded", "failed"),  # a case, money asked back
            _money("credited_but_failed", "failed"),  # the case says credited, the deposit not
            _money("open", "requires_action"),  # judged by the stuck check instead
            _money("elsewhere", "succeeded", provider="kaspi_qr"),  # credited at one, paid at two
            _money("refund_of_credited", "succeeded"),  # its own payment asked back
        ],
        {
            "late_credited": paid,
            "late_dropped": paid,
            "late_open_case": paid,
            "late_refunded": paid,
            "credited_but_failed": paid,
            "open": paid,
            "elsewhere": [*paid, Held("kaspi_qr", "payment", "succeeded", True, 100_000, "KZT")],
            "refund_of_credited": paid,
        },
        {
            "late_credited": [_case("late_credited", "credited")],
            "late_open_case": [_case("late_open_case", "open")],
            "late_refunded": [_case("late_refunded", "refund_requested")],
            "credited_but_failed": [_case("credited_but_failed", "credited")],
            "elsewhere": [_case("elsewhere", "refund_requested")],
            "refund_of_credited": [_case("refund_of_credited", "refund_requested")],
        },
    )
    assert [line.split(":")[0] for line in found.dropped_late_payments] == ["late_dropped"]
    assert [line.split(":")[0] for line in found.late_payments_wrong] == [
        "late_open_case",
        "credited_but_failed",
        "refund_of_credited",
    ]
    assert found.double_charges == found.charge_mismatch == []


def test_a_short_payment_credited_in_full_is_a_mismatch() -> None:
    short = Held("kazbank", "payment", "succeeded", True, 100_000, "KZT", amount_received=60_000)
    found = judge_money([_money("short", "succeeded")], {"short": [short]}, {})
    assert [line.split(":")[0] for line in found.charge_mismatch] == ["short"]


def test_open_payments_pass_only_with_a_real_reason() -> None:
    def open_payment(ident: str, status: str, *, on_purpose: bool = False) -> OpenPayment:
        return OpenPayment(ident, "deposit", status, on_purpose, "RUNNING")

    listed, unexplained = judge_open(
        [
            open_payment("flagged", "processing"),
            open_payment("echo", "processing"),
            open_payment("echo_words", "processing"),
            open_payment("waiting_unflagged", "requires_action"),
            open_payment("abandoned", "requires_action", on_purpose=True),
            open_payment("abandoned_echo", "requires_action", on_purpose=True),
            open_payment("unlisted", "pending"),
        ],
        {
            "flagged": {
                "stuck_reason": "outcome_unknown_at:halyk: inquiry_gave_up",
                "waiting_on": "processing",
            },
            "echo": {"stuck_reason": "processing", "waiting_on": "processing"},
            "echo_words": {"stuck_reason": "stuck at processing", "waiting_on": "processing"},
            "waiting_unflagged": {"stuck_reason": None, "waiting_on": "the player to finish"},
            "abandoned": {"stuck_reason": None, "waiting_on": "the player to finish"},
            "abandoned_echo": {"stuck_reason": None, "waiting_on": "requires_action"},
        },
    )
    assert [line.split()[0] for line in listed] == ["flagged", "abandoned"]
    assert [line.split()[0] for line in unexplained] == [
        "echo",
        "echo_words",
        "waiting_unflagged",
        "abandoned_echo",
        "unlisted",
    ]
    assert not names_something("", "pending")
    assert names_something("risk check", "pending")


async def test_a_fault_that_does_not_apply_raises_and_is_recorded() -> None:
    """GET the behaviour, change the knobs, PUT the whole: spent counters are not re-armed,
    earlier knobs kept; a refused PUT or one that does not echo the knob is not applied."""
    stored: dict[str, Any] = {"outage": False, "throttle_next": 1, "callback_lost": True}
    puts: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=stored)
        body = json.loads(request.content)
        puts.append(body)
        if "no_such_knob" in body:
            return httpx.Response(422, json={"detail": "extra_forbidden: no_such_knob"})
        if "late_next" in body:
            return httpx.Response(200, json={**body, "late_next": 0})  # not taken
        return httpx.Response(200, json=body)

    tally = Tally()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://sim"
    ) as sim:
        faults = Faults(cast(Stack, None), sim, tally)
        await faults.set_behaviour("halyk", outage=True)
        assert puts[-1] == {"outage": True, "throttle_next": 1, "callback_lost": True}
        with pytest.raises(FaultNotApplied, match="422"):
            await faults.set_behaviour("halyk", no_such_knob=1)
        with pytest.raises(FaultNotApplied, match="late_next"):
            await faults.set_behaviour("halyk", late_next=2)
        applied = await faults.apply("bad", lambda f: f.set_behaviour("halyk", no_such_knob=1))
        assert applied is False
    assert len(tally.fault_failures) == 1
    assert "no_such_knob" in tally.fault_failures[0]
    report: dict[str, Any] = {check: [] for check in CHECKS}
    report["ledger_invariants"] = {}
    report["faults_failed"] = tally.fault_failures
    assert breaches(report) == ["faults_failed: 1"]


def test_posting_check_wants_one_credit_and_exactly_one_of_post_or_void() -> None:
    good = [
        _payment("deposit", "card", "succeeded", "d1", ledger_kinds=["deposit_credit", "fee"]),
        _payment("deposit", "qr", "failed", "d2", ledger_kinds=[]),
        _payment(
            "withdrawal", "card", "paid", "w1", ledger_kinds=["withdrawal_hold", "withdrawal_paid"]
        ),
        _payment(
            "withdrawal",
            "card",
            "rejected",
            "w2",
            ledger_kinds=["withdrawal_hold", "withdrawal_released"],
        ),
        _payment("withdrawal", "card", "in_review", "w3", ledger_kinds=["withdrawal_hold"]),
    ]
    assert Chaos.check_postings(good) == []
    bad = [
        _payment("deposit", "card", "succeeded", "d3", ledger_kinds=["deposit_credit"] * 2),
        _payment("deposit", "card", "failed", "d4", ledger_kinds=["deposit_credit"]),
        _payment(
            "withdrawal",
            "card",
            "paid",
            "w4",
            ledger_kinds=["withdrawal_hold", "withdrawal_paid", "withdrawal_released"],
        ),
        _payment("withdrawal", "card", "failed", "w5", ledger_kinds=["withdrawal_hold"]),
    ]
    assert [line.split()[0] for line in Chaos.check_postings(bad)] == ["d3", "d4", "w4", "w5"]


@pytest.mark.parametrize("name", ["full", "short", "selftest"])
async def test_every_fault_meets_a_real_provider_of_the_default_routing(name: str) -> None:
    """Each schedule's behaviour changes (through the simulator's admin API) name providers of
    the default routing; payout faults only the payout desks payouts go to; orders reported
    paid after they expired only at a provider that sends callbacks (Kaspi is polled)."""
    settings = Settings()
    providers = {rule.name: rule.method for rule in settings.providers}
    desks = set(settings.payout_providers.values())
    behaviours: dict[str, dict[str, Any]] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/admin/providers":
            return httpx.Response(200, json=providers)
        if request.method == "GET":
            return httpx.Response(200, json=behaviours.get(path, {}))
        behaviours[path] = json.loads(request.content)
        return httpx.Response(200, json=behaviours[path])

    tally = Tally()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://sim"
    ) as sim:
        faults = Faults(cast(Stack, None), sim, tally)
        await faults.load_providers()
        for _, label, action in schedule(name, pg_restart=False):
            if label in ("kill", "heal"):  # the worker's process; the reset of everything
                continue
            assert await faults.apply(label, action), tally.fault_failures
    assert tally.fault_failures == []

    changed = {tuple(path.split("/")[2:4]) for path in behaviours}
    assert {desk for kind, desk in changed if kind == "payouts"} <= desks
    assert {provider for kind, provider in changed if kind == "providers"} <= set(providers)
    late = [
        p
        for p in providers
        if behaviours.get(f"/admin/providers/{p}/behaviour", {}).get("late_success_after_expiry")
    ]
    assert late, behaviours
    for provider in late:
        plugin = plugins().get(settings.connector(provider).type)
        assert getattr(plugin, "CALLBACKS", True), provider
        assert providers[provider] != "card", provider
    if name != "selftest":
        # The charges of both card acquirers and the payouts of every desk meet faults.
        knobs = ("error_after_processing_next", "reset_after_processing_next")
        for kind, names in (("providers", ("halyk", "freedom")), ("payouts", tuple(desks))):
            for provider in names:
                behaviour = behaviours[f"/admin/{kind}/{provider}/behaviour"]
                assert any(behaviour.get(knob) for knob in knobs), (kind, provider, behaviour)


def test_a_withdrawal_the_closed_loop_refuses_goes_where_it_may() -> None:
    """As a player on the casino's page would: to an allowed destination, up to what it may
    still take, under a new key; one refused in turn (a card not vaulted at the card payout
    provider) to the next; nothing left, or another refusal, stays refused."""
    chaos = Chaos.__new__(Chaos)
    chaos.tally = Tally()
    player = Player(id="pl_1", phone="+77011234567", card="4242424242424242", vip=False)
    funding = Payment("deposit", "card", player, 300_000_00, "funding", id="dep_1")
    funding.body = {"details": {"card": {"number": player.card}}}
    funding.status = "succeeded"
    chaos.payments = [funding]
    wanted = Payment("withdrawal", "bank_transfer", player, 20_000_00, "iban")
    wanted.body = {"amount": 20_000_00, "method": "bank_transfer", "destination": {"iban": "x"}}
    first_key = wanted.key

    def refused(code: str, **extra: Any) -> httpx.Response:
        return httpx.Response(422, json={"code": code, **extra})

    allowed = [
        {"method": "card", "destination": "card 424242******4242", "up_to": 15_000_00},
        {"method": "ewallet", "destination": "wallet +77011234567", "up_to": 50_000_00},
    ]
    assert chaos.reroute(wanted, refused("closed_loop_required", allowed_destinations=allowed))
    assert wanted.body["destination"] == {"deposit_id": "dep_1"}
    assert (wanted.method, wanted.amount, wanted.body["amount"]) == ("card", 15_000_00, 15_000_00)
    assert wanted.key != first_key
    assert chaos.reroute(wanted, refused("card_not_payable"))
    assert wanted.body["destination"] == {"wallet_account": "+77011234567"}
    assert (wanted.method, wanted.amount) == ("ewallet", 15_000_00)
    assert not chaos.reroute(wanted, refused("card_not_payable"))  # nothing left
    assert not chaos.reroute(wanted, refused("closed_loop_required", allowed_destinations=allowed))
    assert chaos.tally.rerouted == {"bank_transfer -> card": 1, "bank_transfer -> ewallet": 1}

    other = Payment("withdrawal", "card", player, 5_000_00, "card")
    assert not chaos.reroute(other, refused("insufficient_funds"))
    assert not chaos.reroute(other, refused("card_not_payable"))  # not rerouted: the API's word


def _day(provider: str, clearing: int, difference: int, held: int, how: str) -> ClearingDay:
    return ClearingDay(
        provider=provider,
        date="2026-11-27",
        currency="KZT",
        clearing=clearing,
        difference=difference,
        open_cases=1 if held else 0,
        open_held=held,
        outstanding_held=held,
        reconciled=how,
    )


def test_clearing_is_explained_only_when_settled_and_covered_by_open_cases() -> None:
    """Made-up provider days: settled to zero with nothing left over; settled with the open
    cases' money in the difference account (received and not booked: a credit there); and
    each way it can fail: the day never reconciled, money posted after the settlement, a
    difference no open case explains, a case closed without moving its money."""
    fine = [
        _day("halyk", 0, 0, 0, "completed, 0 case(s) open"),
        _day("kazbank", 0, -77_700, 77_700, "completed, 1 case(s) open"),  # unknown transfer
        _day("freedom", 0, 50_000, -50_000, "completed, 1 case(s) open"),  # short payment
    ]
    assert judge_clearing(fine) == []
    broken = [
        _day("ioka", 300_000, 0, 0, "not reconciled"),
        _day("kaspi_pay", 123_456, 0, 0, "completed, 0 case(s) open"),
        _day("kaspi_qr", 0, 10_000, 0, "completed, 0 case(s) open"),
        _day("freedom_wallet", 0, -40_000, 25_000, "completed, 1 case(s) open"),
    ]
    found = judge_clearing(fine + broken)
    assert [line.split()[0] for line in found] == [d.provider for d in broken]
    assert found[0] == (
        "ioka 2026-11-27 KZT: clearing 300000, difference 0, open cases 0 (their money 0; every "
        "open case's 0), reconciliation not reconciled: 300000 unexplained"
    )
    assert found[3].endswith("-15000 unexplained")
    table = clearing_table(fine + broken)
    assert len(table) == 1 + len(fine) + len(broken)
    assert [row.split()[0] for row in table[1:]] == [d.provider for d in fine + broken]
    assert [row.split()[7] for row in table[1:]] == ["yes"] * 3 + ["NO"] * 4
