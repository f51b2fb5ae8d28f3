"""`python -m bench.chaos` (`make chaos`): mixed payments through the HTTP API while things break.

It starts the embedded stack (PostgreSQL, Temporal dev server, simulator, worker, API) in a
temporary data directory on free ports, creates players, funds each with a card deposit and a
little game turnover, then submits `--payments` mixed payments at `--rate` per second with up to
`--concurrency` requests in flight:

* card deposits (Visa and Mastercard at `halyk`, `freedom` and `cloudpayments` by routing and
  failover, UnionPay at `freedom`; some declined cards, some 3-D Secure challenges the player
  passes on the simulator's page),
* deposits by bank transfer (`kazbank`), e-wallet (`freedom_wallet`), mobile banking
  (`kaspi_pay`), QR (`kaspi_qr`) and aggregator (`ioka`), which wait for the player: the driver
  confirms (or declines) on the simulator's player page like a person would (at ioka, whose
  checkout stays open for another try after a declined card, a player who gives up leaves the
  order unpaid until its due date, brought forward through the admin API).
  Some money comes oddly: bank statement lines at KazBank with free-text purposes (60 % then the
  rest; more than ordered; after the player declined and the deposit failed, exact, over, or
  short then topped up) and e-wallet orders that expire unpaid and are reported paid afterwards,
* withdrawals to KZ IBANs (some to closed accounts: the payout fails), to an e-wallet and to the
  player's phone (paid by `kazbank`), and to the deposit card of players whose card `freedom`
  vaulted (paid by `freedom`); the large ones wait for an operator (`/approve` with the
  operator key, a second approval by the admin key above the four-eyes threshold, some
  rejected) and a few are cancelled by the player.

Meanwhile a fault schedule runs, keyed to how many payments were submitted: the worker is SIGKILLed
and started again several times, `halyk` goes fully down (an acquirer outage, while `kazbank`'s
payout desk answers errors) and comes back, card charges and payouts are processed and then
answered 500 / 502 / 504 or cut off without an answer, charge requests are held in the network past
the platform's timeout while a cancel of the unknown reference answers 404 (so they land later),
providers throttle (429 with Retry-After) and answer 401 token_expired, a provider answers some
charges and payouts only after the platform's timeout, payouts stay `processing` for a while, the
simulator duplicates, repeats (same event id), delays and drops callbacks (of the providers that
send them: Kaspi is polled), and PostgreSQL is restarted once. Every fault is set through the
simulator's admin API (`/admin/providers/{name}/behaviour`, `/admin/payouts/{name}/...`), so each
provider meets it on its own API. Each fault must apply: the simulator's answer is checked, and one
that did not apply (a refused knob, a statement line not matched) fails the run. A request that
meets a 5xx or a refused connection is retried with the same Idempotency-Key, like a casino backend
would.

At the end it waits (`--settle-timeout`) for every payment to be terminal and for the late money
to be taken up, then checks (`bench.chaos_checks`):

* lost: every payment the API accepted (202) is readable and has a Temporal workflow;
* open without a reason: whatever is still open is listed by `GET /v1/ops/stuck` with a real
  reason: its `stuck_reason` (the step it gave up), or, for what the run left unfinished on
  purpose, a `waiting_on` naming what it waits for with its workflow running; never just the
  status echoed back;
* double charge: per deposit, money moved (`GET /admin/charges?reference=`, every provider) at
  most once, and exactly once, where it was credited, when it succeeded; money at another
  provider only with a late-payment case (`GET /v1/ops/late-payments`) credited once or refunded;
* dropped late payment: a deposit that did not succeed but whose money moved somewhere has a
  late-payment case;
* double payout: per withdrawal, at most one paid payout across all desks, paid exactly when the
  withdrawal is paid;
* ledger: each payment's postings (credit once; hold then exactly one of post/void), the
  ledger invariants (`db.ledger_check.run_checks`), and each player's wallet equal to succeeded
  deposits - paid withdrawals - held (available) and open withdrawals (held);
* unexplained clearing: that day's reconciliation (issue 16's "done means"), started as an
  operator would (`POST /v1/recon/runs {provider, date}` for each provider used and each
  business day of the run, each awaited), leaves every provider's clearing (`GET
  /v1/finance/recon?date=`) at zero, with what the settlement parked in the difference account
  exactly the money of the cases still open; printed as a table per provider.

It prints the counts (FIGURES: lost, double charges, double payouts, dropped late payments) and
exits 1 on any breach. `--self-test` (`bench.chaos_selftest`) runs a short schedule, plants a
breach for each check on purpose and exits 0 only when every one is reported.
The stack's timings are shortened for the run (status polls every few seconds instead of every
30 s, shorter retry backoffs, circuit cooldown and processing window); see CHAOS_ENV.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import text
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from bench.chaos_checks import (
    ClearingDay,
    Held,
    LateCase,
    Money,
    OpenPayment,
    cases_by_deposit,
    clearing_table,
    judge_clearing,
    judge_money,
    judge_open,
)
from config import Settings
from config.settings import DEFAULT_PROVIDERS
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks
from domain.iban import with_check_digits
from domain.iin import check_digit
from domain.recon.days import business_day
from domain.statuses import TERMINAL_DEPOSIT_STATUSES, DepositStatus
from domain.withdrawals import WithdrawalStatus
from stack.launcher import Stack, free_port

DEPOSIT_TERMINAL = frozenset(s.value for s in TERMINAL_DEPOSIT_STATUSES)
WITHDRAWAL_TERMINAL = frozenset(s.value for s in WithdrawalStatus if s.terminal)
DEPOSIT_OPEN = tuple(s.value for s in DepositStatus if s not in TERMINAL_DEPOSIT_STATUSES)
WITHDRAWAL_OPEN = tuple(s.value for s in WithdrawalStatus if not s.terminal)
ASYNC_METHODS = ("bank_transfer", "ewallet", "mobile_banking", "qr", "aggregator")
DECLINED_CARD = "4000000000000002"
THREE_DS_CARD = "4000000000003220"
TENGE = 100  # minor units per tenge
WITHDRAWAL_MIN = Settings.model_fields["withdrawal_min_minor"].default

# A request that reached a provider may still be processed for this long after the platform
# stopped waiting (`ProviderRule.processing_window_seconds` and, for payouts,
# `payout_processing_window_seconds`, 120 s by default): long enough for
# the requests the fault schedule holds in the network (8 s), short enough that a run does not
# idle two minutes for each of them.
CHAOS_PROCESSING_WINDOW_SECONDS = 20
# How long the end-of-run reconciliation of one provider's day may take.
RECON_TIMEOUT_SECONDS = 300.0


def chaos_providers() -> str:
    """`PAY_PROVIDERS` for the run: the default registry with the shorter processing window."""
    rules = [
        dataclasses.asdict(
            dataclasses.replace(rule, processing_window_seconds=CHAOS_PROCESSING_WINDOW_SECONDS)
        )
        for rule in DEFAULT_PROVIDERS
    ]
    return json.dumps(rules)


# Shorter timings so a run ends in minutes; each can still be overridden from the environment.
CHAOS_ENV = {
    "PAY_PROVIDERS": chaos_providers(),
    "PAY_PAYOUT_PROCESSING_WINDOW_SECONDS": str(CHAOS_PROCESSING_WINDOW_SECONDS),
    "PAY_PAYOUT_PROCESSING_POLL_SECONDS": "5",  # payouts processing (8 s here) polled from 5 s
    "PAY_CALLBACK_POLL_INITIAL_SECONDS": "3",
    "PAY_CALLBACK_POLL_MAX_SECONDS": "10",
    "PAY_CHARGE_RETRY_MAX_SECONDS": "5",
    "PAY_PAYOUT_RETRY_MAX_SECONDS": "5",
    "PAY_CIRCUIT_COOLDOWN_SECONDS": "10",
    "PAY_PROVIDER_HTTP_TIMEOUT_SECONDS": "5",
    "PAY_TEMPORAL_TASK_QUEUE": "chaos",
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- test data ----------------------------------------------------------------------------------


def make_iin(rng: random.Random) -> str:
    while True:
        birth = f"{rng.randint(70, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        first = f"{birth}{rng.choice('34')}{rng.randint(1000, 9999)}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def make_iban(rng: random.Random, *, closed: bool = False) -> str:
    account = ("999" if closed else str(rng.randint(1, 8))) + "".join(
        rng.choice("0123456789") for _ in range(12 if not closed else 10)
    )
    return with_check_digits("125" + account)


def make_card(rng: random.Random) -> str:
    """A Luhn-valid Visa, Mastercard or UnionPay debit card number unique enough for per-card
    velocity rules (a credit card's BIN, `domain.cards.BIN_PRODUCTS`, is refused: no credit
    money for gambling). UnionPay cards are routed to `freedom` only (the one acquirer taking
    them), so their players' cards are vaulted where card payouts are made."""
    body = rng.choice(["424242", "520082", "622126"]) + "".join(
        rng.choice("0123456789") for _ in range(9)
    )
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def card_details(number: str) -> dict[str, Any]:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}


# -- bookkeeping ----------------------------------------------------------------------------------


@dataclass
class Player:
    id: str
    phone: str
    card: str
    vip: bool
    funded: int = 0  # succeeded funding amount
    committed: int = 0  # withdrawals submitted so far (whatever became of them)
    card_token: str | None = None
    deposits: int = 0


@dataclass
class Payment:
    kind: str  # "deposit" | "withdrawal"
    method: str
    player: Player
    amount: int
    label: str  # what the plan meant: "card", "card_3ds", "card_declined", "iban_closed", ...
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    body: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    workflow_id: str | None = None
    refused: str | None = None
    player_pays: bool = True  # async deposits: confirm (True) or decline on the page
    review: str = "approve"  # withdrawals in review: approve | reject
    cancel: bool = False
    acted: bool = False
    reviewed: set[tuple[str, str]] = field(default_factory=set)
    status: str | None = None
    provider: str | None = None
    ledger_kinds: list[str] = field(default_factory=list)
    expect_open: bool = False  # left unfinished on purpose (the player / operator never acts)
    # Not waited for at the end: by the platform's rules it cannot end within the run (a bank
    # transfer paid over the amount waits out its 72 h). Still judged like any open payment.
    not_waited: bool = False
    late: bool = False  # its money arrives after the deposit ended: a late payment expected
    rerouted: str | None = None  # a withdrawal sent elsewhere by the closed loop: from what
    allowed: list[dict[str, Any]] = field(default_factory=list)  # where else it may go
    attempts: list[str] = field(default_factory=list)


@dataclass
class Tally:
    submitted: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    player_actions: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    fault_failures: list[str] = field(default_factory=list)  # faults that did not apply
    unfired: list[str] = field(default_factory=list)  # one-shot faults no call consumed
    statement_lines: Counter[str] = field(default_factory=Counter)
    rerouted: Counter[str] = field(default_factory=Counter)  # withdrawals, by the closed loop
    late_money: Counter[str] = field(default_factory=Counter)


class Api:
    """The public API as a casino backend and its operators use it: retries keep the key."""

    def __init__(self, http: httpx.AsyncClient, keys: dict[str, str], tally: Tally) -> None:
        self.http = http
        self.keys = keys
        self.tally = tally

    def headers(self, role: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str = "merchant",
        key: str | None = None,
        body: dict[str, Any] | None = None,
        retry_for: float = 180.0,
    ) -> httpx.Response:
        """The first answer that is not a 5xx or a connection failure (retried until
        `retry_for` seconds are over; then the last 5xx, or the exception is raised)."""
        deadline = time.monotonic() + retry_for
        delay = 0.3
        while True:
            try:
                response = await self.http.request(
                    method, path, json=body, headers=self.headers(role, key)
                )
                if response.status_code < 500 or time.monotonic() > deadline:
                    return response
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            self.tally.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)

    async def get_json(self, path: str, *, role: str = "merchant") -> Any:
        response = await self.call("GET", path, role=role)
        response.raise_for_status()
        return response.json()

    async def list_all(self, path: str, *, role: str = "merchant") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            sep = "&" if "?" in path else "?"
            page = await self.get_json(
                f"{path}{sep}limit=200" + (f"&cursor={cursor}" if cursor else ""), role=role
            )
            items += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


async def sim_call(
    sim: httpx.AsyncClient, method: str, path: str, *, body: Any = None, tries: int = 20
) -> httpx.Response:
    """A simulator admin call, retried over dropped keep-alive connections and 5xx."""
    for attempt in range(1, tries + 1):
        try:
            response = await sim.request(method, path, json=body)
            if response.status_code < 500 or attempt == tries:
                response.raise_for_status()
                return response
        except httpx.TransportError:
            if attempt == tries:
                raise
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


# -- faults -------------------------------------------------------------------------------------


class FaultNotApplied(RuntimeError):
    """The simulator did not take a fault (a refused PUT, a knob it does not echo back)."""


ONE_SHOT = (
    "fail_next",
    "timeout_next",
    "late_next",
    "error_after_processing_next",
    "reset_after_processing_next",
    "throttle_next",
    "expire_credentials_next",
)


class Faults:
    """Fault actions against the stack and the simulator's admin API.

    A behaviour change reads the provider's behaviour as it is now (one-shot `*_next` counters
    as far as they were consumed), changes the knobs asked for and PUTs the whole of it: the
    simulator replaces a behaviour on every PUT, so sending only the change would reset the
    rest, and re-sending what was set earlier would re-arm spent counters. The answer must be a
    2xx that echoes every knob: a fault that does not apply raises `FaultNotApplied`, and the
    run records it as a breach (`faults_failed`)."""

    def __init__(self, stack: Stack, simulator: httpx.AsyncClient, tally: Tally) -> None:
        self.stack = stack
        self.sim = simulator
        self.tally = tally
        self.providers: dict[str, str] = {}
        self.late_success_on: set[str] = set()
        self.callbacks_delivered = asyncio.Event()  # cleared while callbacks are dropped
        self.callbacks_delivered.set()
        self.money_windows = 0  # late / odd money being made right now
        self.no_money_window = asyncio.Event()
        self.no_money_window.set()
        self.dirty = False

    def note(self, message: str) -> None:
        self.tally.faults.append(message)
        say(f"FAULT {message}")

    def failed(self, message: str) -> None:
        self.tally.fault_failures.append(message)
        say(f"FAULT NOT APPLIED {message}")

    async def apply(self, label: str, action: Callable[["Faults"], Awaitable[None]]) -> bool:
        """Run one fault action; one that fails is recorded as a breach, not fatal."""
        try:
            await action(self)
        except Exception as exc:
            self.failed(f"{label}: {type(exc).__name__}: {exc}")
            return False
        return True

    async def load_providers(self) -> None:
        self.providers = (await sim_call(self.sim, "GET", "/admin/providers")).json()

    def by_method(self, method: str) -> list[str]:
        return [name for name, m in self.providers.items() if m == method]

    async def _change(self, path: str, changes: dict[str, Any]) -> None:
        self.dirty = True
        try:
            current = (await sim_call(self.sim, "GET", path)).json()
            response = await sim_call(self.sim, "PUT", path, body={**current, **changes})
        except httpx.HTTPStatusError as exc:
            answer = exc.response
            raise FaultNotApplied(
                f"{exc.request.method} {path} answered {answer.status_code}: {answer.text[:300]}"
            ) from exc
        echoed = response.json()
        wrong = {k: echoed.get(k) for k, v in changes.items() if echoed.get(k) != v}
        if wrong:
            raise FaultNotApplied(f"PUT {path} answered {wrong}, not {changes}")

    async def set_behaviour(self, provider: str, **changes: Any) -> None:
        await self._change(f"/admin/providers/{provider}/behaviour", changes)

    async def set_payouts(self, provider: str, **changes: Any) -> None:
        await self._change(f"/admin/payouts/{provider}/behaviour", changes)

    async def late(self, provider: str, rate: float, *, desk: str | None = None) -> None:
        """The provider (and the payout `desk`, if one is named) does the work but answers
        after the platform's HTTP timeout (5 s): the outcome is unknown until a status
        inquiry, the classic double-charge trap."""
        await self.set_behaviour(provider, timeout_rate=rate, timeout_seconds=8)
        if desk:
            await self.set_payouts(desk, timeout_rate=rate, timeout_seconds=8)
        payouts = "" if not desk else " and payouts" if desk == provider else f" and {desk} payouts"
        self.note(
            f"{provider} answers {rate:.0%} of charges{payouts} after the timeout"
            if rate
            else f"{provider} charges{payouts} answered in time again"
        )

    async def processed_then_error(
        self, provider: str, charges: int, payouts: int = 0, status: int = 502
    ) -> None:
        """Processed (a card charged, a payment opened, a payout paid), then answered
        500/502/504. `charges` at the provider's own API, `payouts` at its payout desk."""
        what = []
        if charges:
            await self.set_behaviour(
                provider,
                error_after_processing_next=charges,
                error_after_processing_status=status,
            )
            what.append(f"the next {charges} charges")
        if payouts:
            await self.set_payouts(
                provider,
                error_after_processing_next=payouts,
                error_after_processing_status=status,
            )
            what.append(f"the next {payouts} payouts")
        self.note(f"{provider} processes {' and '.join(what)}, then answers {status}")

    async def processed_then_reset(self, provider: str, charges: int, payouts: int = 0) -> None:
        """Processed, then the connection drops without an answer."""
        what = []
        if charges:
            await self.set_behaviour(provider, reset_after_processing_next=charges)
            what.append(f"the next {charges} charges")
        if payouts:
            await self.set_payouts(provider, reset_after_processing_next=payouts)
            what.append(f"the next {payouts} payouts")
        self.note(f"{provider} processes {' and '.join(what)}, then drops the connection")

    async def in_flight(self, provider: str, requests: int, seconds: float = 8.0) -> None:
        """The next charge requests are held in the network past the platform's timeout: an
        inquiry finds nothing, a cancel of that unknown reference answers 404 and records
        nothing (`unknown_cancel: not_found`), and the request is charged when it lands."""
        await self.set_behaviour(
            provider, late_next=requests, timeout_seconds=seconds, unknown_cancel="not_found"
        )
        self.note(
            f"{provider}: the next {requests} charges land {seconds:.0f} s late; a cancel of an "
            "unknown reference answers 404 (not_found)"
        )

    async def throttle(
        self, provider: str, calls: int, *, payouts: int = 0, retry_after: int = 2
    ) -> None:
        """The next `calls` to the provider's API and `payouts` calls to its payout desk."""
        what = []
        if calls:
            await self.set_behaviour(
                provider, throttle_next=calls, throttle_retry_after_seconds=retry_after
            )
            what.append(f"{calls} calls")
        if payouts:
            await self.set_payouts(
                provider, throttle_next=payouts, throttle_retry_after_seconds=retry_after
            )
            what.append(f"{payouts} payout calls")
        self.note(
            f"{provider} throttles the next {' and '.join(what)} (429, Retry-After {retry_after} s)"
        )

    async def expire_credentials(self, provider: str, calls: int, *, payouts: int = 0) -> None:
        what = []
        if calls:
            await self.set_behaviour(provider, expire_credentials_next=calls)
            what.append(f"{calls} calls")
        if payouts:
            await self.set_payouts(provider, expire_credentials_next=payouts)
            what.append(f"{payouts} payout calls")
        self.note(f"{provider} answers 401 token_expired to the next {' and '.join(what)}")

    async def repeat_callbacks(self, times: int) -> None:
        """Each callback delivered `times` more times: same event id, byte-identical body."""
        for provider in self.providers:
            await self.set_behaviour(provider, callback_same_event_repeat=times)
        self.note(
            f"callbacks repeated {times}x with the same event id"
            if times
            else "callbacks no longer repeated"
        )

    async def late_success(self, provider: str, delay_ms: int = 15_000) -> None:
        """Orders at this provider that expire or are cancelled are reported paid afterwards."""
        if provider in self.late_success_on:
            return
        await self.set_behaviour(
            provider, late_success_after_expiry=True, late_success_delay_ms=delay_ms
        )
        self.late_success_on.add(provider)
        self.note(f"{provider} reports expired/cancelled orders paid {delay_ms / 1000:.0f} s later")

    async def slow_payouts(self, provider: str, seconds: float) -> None:
        await self.set_payouts(provider, payout_processing_seconds=seconds)
        self.note(
            f"{provider} payouts stay processing {seconds:.0f} s"
            if seconds
            else f"{provider} payouts final at once again"
        )

    async def kill_worker(self) -> None:
        pid = await asyncio.to_thread(self.stack.kill, "worker")
        self.note(f"SIGKILL worker (pid {pid})")
        await asyncio.sleep(1.0)
        began = time.monotonic()
        await asyncio.to_thread(self.stack.respawn, "worker")
        self.note(f"worker restarted in {time.monotonic() - began:.1f}s")

    async def outage(self, provider: str, down: bool, *, desks: tuple[str, ...] = ()) -> None:
        """The provider's API answers 503 to everything (an acquirer outage), and so do the
        payout calls of the payout `desks` named (their payment APIs stay up)."""
        await self.set_behaviour(provider, outage=down)
        for desk in desks:
            await self.set_payouts(desk, error_rate=1.0 if down else 0.0)
        payouts = f", payouts at {' and '.join(desks)}" if desks else ""
        self.note(
            f"{provider} DOWN (acquirer outage{payouts}: 503)"
            if down
            else f"{provider} back up"
            + (f" (payouts at {' and '.join(desks)} too)" if desks else "")
        )

    async def restart_postgres(self) -> None:
        self.note("PostgreSQL stopping (fast shutdown, 3 s down)")
        began = time.monotonic()
        await asyncio.to_thread(self.stack.restart_postgres, 3.0)
        self.note(f"PostgreSQL back after {time.monotonic() - began:.1f}s")

    async def callbacks(self, **changes: Any) -> None:
        for provider in self.providers:
            await self.set_behaviour(provider, **changes)

    async def duplicate(self, on: bool) -> None:
        await self.callbacks(callback_duplicate=on, callback_out_of_order=on)
        self.note(
            f"callbacks {'duplicated + stale out-of-order' if on else 'no longer duplicated'}"
        )

    async def delay(self, ms: int) -> None:
        await self.callbacks(callback_delay_ms=ms)
        self.note(f"callbacks delayed {ms} ms" if ms else "callbacks no longer delayed")

    @contextlib.asynccontextmanager
    async def money_window(self) -> AsyncIterator[None]:
        """Late or odd money (statement lines, an order paid after it expired) is made while
        callbacks are delivered, and callbacks are not dropped until it was reported: without
        its callback the platform could only find it by a statement reconciliation, which it
        does not run. Waits for callbacks to be delivered, then holds off `drop`."""
        await self.callbacks_delivered.wait()
        self.money_windows += 1
        self.no_money_window.clear()
        try:
            yield
        finally:
            self.money_windows -= 1
            if not self.money_windows:
                self.no_money_window.set()

    async def drop(self, on: bool) -> None:
        if on:
            self.callbacks_delivered.clear()  # no late money from now on ...
            with contextlib.suppress(TimeoutError):  # ... and what is on its way lands first
                await asyncio.wait_for(self.no_money_window.wait(), 120.0)
        await self.callbacks(callback_lost=on)
        if not on:
            self.callbacks_delivered.set()
        self.note("callbacks DROPPED" if on else "callbacks delivered again")

    async def unfired(self) -> list[str]:
        """One-shot counters nobody consumed (a fault that never met a call)."""
        left: list[str] = []
        for provider in self.providers:
            for path, what in (
                (f"/admin/providers/{provider}/behaviour", provider),
                (f"/admin/payouts/{provider}/behaviour", f"{provider} payouts"),
            ):
                behaviour = (await sim_call(self.sim, "GET", path)).json()
                left += [f"{what}: {k} {behaviour[k]}" for k in ONE_SHOT if behaviour.get(k)]
        return left

    async def heal(self) -> None:
        if not self.dirty:
            return
        self.tally.unfired += await self.unfired()
        await sim_call(self.sim, "POST", "/admin/reset")
        for provider in self.providers:
            await sim_call(self.sim, "PUT", f"/admin/payouts/{provider}/behaviour", body={})
        self.late_success_on.clear()
        self.callbacks_delivered.set()
        self.dirty = False
        self.note("all simulator behaviour reset")


Step = tuple[float, str, Callable[[Faults], Awaitable[None]]]


def schedule(name: str, *, pg_restart: bool) -> list[Step]:
    """Fault steps keyed to the share of payments submitted: (share, label, action).

    Charges meet their faults at the card acquirers (`halyk` first in routing, `freedom` for
    UnionPay cards and as the failover), payouts at the payout desks of the default routing:
    `kazbank` (IBAN, e-wallet and phone payouts) and `freedom` (payouts to a card it vaulted)."""
    steps: list[Step]
    if name == "full":
        steps = [
            (0.02, "repeat", lambda f: f.repeat_callbacks(2)),
            (0.03, "late success", lambda f: f.late_success("freedom_wallet")),
            (0.05, "duplicate", lambda f: f.duplicate(True)),
            (0.07, "5xx", lambda f: f.processed_then_error("halyk", 4, status=502)),
            (0.08, "5xx", lambda f: f.processed_then_error("kazbank", 0, payouts=3, status=502)),
            (0.10, "kill", lambda f: f.kill_worker()),
            (0.13, "reset", lambda f: f.processed_then_reset("halyk", 4)),
            (0.14, "reset", lambda f: f.processed_then_reset("kazbank", 0, payouts=3)),
            (0.16, "throttle", lambda f: f.throttle("halyk", 6, retry_after=2)),
            (0.17, "throttle", lambda f: f.throttle("kazbank", 0, payouts=4, retry_after=2)),
            (0.18, "credentials", lambda f: f.expire_credentials("halyk", 3)),
            (0.19, "credentials", lambda f: f.expire_credentials("kazbank", 0, payouts=2)),
            (0.20, "outage", lambda f: f.outage("halyk", True, desks=("kazbank",))),
            (0.22, "5xx", lambda f: f.processed_then_error("freedom", 3, payouts=1, status=500)),
            (0.24, "reset", lambda f: f.processed_then_reset("freedom", 2, payouts=1)),
            (0.26, "in flight", lambda f: f.in_flight("freedom", 3)),
            (0.28, "credentials", lambda f: f.expire_credentials("freedom", 2)),
            (0.30, "kill", lambda f: f.kill_worker()),
            (0.33, "throttle", lambda f: f.throttle("freedom", 4, payouts=2, retry_after=1)),
            (0.35, "delay", lambda f: f.delay(3000)),
            (0.42, "outage", lambda f: f.outage("halyk", False, desks=("kazbank",))),
            (0.45, "in flight", lambda f: f.in_flight("halyk", 4)),
            (0.48, "slow payouts", lambda f: f.slow_payouts("kazbank", 8)),
            (0.49, "slow payouts", lambda f: f.slow_payouts("freedom", 8)),
            (0.53, "throttle", lambda f: f.throttle("kaspi_qr", 3)),
            (0.54, "throttle", lambda f: f.throttle("kazbank", 3)),
            (0.55, "credentials", lambda f: f.expire_credentials("kaspi_pay", 2)),
            (0.56, "credentials", lambda f: f.expire_credentials("ioka", 2)),
            (0.60, "kill", lambda f: f.kill_worker()),
            (0.65, "drop", lambda f: f.drop(True)),
            (0.70, "late", lambda f: f.late("halyk", 0.2, desk="kazbank")),
            (0.72, "5xx", lambda f: f.processed_then_error("halyk", 3, status=500)),
            (0.73, "5xx", lambda f: f.processed_then_error("kazbank", 0, payouts=2, status=500)),
            (0.75, "5xx", lambda f: f.processed_then_error("halyk", 2, status=504)),
            (0.76, "5xx", lambda f: f.processed_then_error("kazbank", 0, payouts=2, status=504)),
            (0.78, "reset", lambda f: f.processed_then_reset("halyk", 2)),
            (0.79, "reset", lambda f: f.processed_then_reset("kazbank", 0, payouts=2)),
            (0.80, "drop", lambda f: f.drop(False)),
            (0.85, "kill", lambda f: f.kill_worker()),
            (0.88, "late", lambda f: f.late("halyk", 0.0, desk="kazbank")),
            (0.95, "heal", lambda f: f.heal()),
        ]
        if pg_restart:
            steps.append((0.50, "postgres", lambda f: f.restart_postgres()))
    elif name == "short":
        steps = [
            (0.02, "repeat", lambda f: f.repeat_callbacks(2)),
            (0.03, "late success", lambda f: f.late_success("freedom_wallet")),
            (0.05, "duplicate", lambda f: f.duplicate(True)),
            (0.07, "5xx", lambda f: f.processed_then_error("halyk", 2, status=502)),
            (0.08, "5xx", lambda f: f.processed_then_error("kazbank", 0, payouts=1, status=502)),
            (0.10, "reset", lambda f: f.processed_then_reset("halyk", 1)),
            (0.11, "reset", lambda f: f.processed_then_reset("kazbank", 0, payouts=1)),
            (0.12, "credentials", lambda f: f.expire_credentials("halyk", 1)),
            (0.13, "credentials", lambda f: f.expire_credentials("kazbank", 0, payouts=1)),
            (0.15, "outage", lambda f: f.outage("halyk", True, desks=("kazbank",))),
            (0.17, "5xx", lambda f: f.processed_then_error("freedom", 1, payouts=1, status=504)),
            (0.18, "reset", lambda f: f.processed_then_reset("freedom", 1)),
            (0.19, "in flight", lambda f: f.in_flight("freedom", 1)),
            (0.20, "late", lambda f: f.late("freedom", 0.3, desk="freedom")),
            (0.25, "throttle", lambda f: f.throttle("freedom", 2, retry_after=1)),
            (0.30, "kill", lambda f: f.kill_worker()),
            (0.50, "slow payouts", lambda f: f.slow_payouts("kazbank", 5)),
            (0.52, "throttle", lambda f: f.throttle("kazbank", 2)),
            (0.55, "outage", lambda f: f.outage("halyk", False, desks=("kazbank",))),
            (0.56, "throttle", lambda f: f.throttle("halyk", 2, retry_after=1)),
            (0.565, "throttle", lambda f: f.throttle("kazbank", 0, payouts=2, retry_after=1)),
            (0.57, "in flight", lambda f: f.in_flight("halyk", 1)),
            (0.58, "late", lambda f: f.late("freedom", 0.0, desk="freedom")),
            (0.60, "drop", lambda f: f.drop(True)),
            (0.80, "heal", lambda f: f.heal()),
        ]
        if pg_restart:
            steps.append((0.45, "postgres", lambda f: f.restart_postgres()))
    else:  # "selftest": a few payments under light faults, then breaches planted on purpose
        steps = [
            (0.05, "repeat", lambda f: f.repeat_callbacks(1)),
            (0.10, "late success", lambda f: f.late_success("freedom_wallet")),
            (0.90, "heal", lambda f: f.heal()),
        ]
    return sorted(steps, key=lambda step: step[0])


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Options:
    payments: int
    concurrency: int
    rate: float
    players: int
    faults: str
    pg_restart: bool
    settle_timeout: float
    seed: int
    data_dir: Path | None
    keep: bool
    json_out: Path | None
    self_test: bool = False


class Chaos:
    def __init__(self, opts: Options, stack: Stack) -> None:
        self.opts = opts
        self.stack = stack
        self.rng = random.Random(opts.seed)
        self.tally = Tally()
        self.players: list[Player] = []
        self.payments: list[Payment] = []
        self.by_id: dict[str, Payment] = {}
        self.done_submitting = asyncio.Event()
        self.finished = asyncio.Event()
        self.progress = 0.0
        self.progressed = asyncio.Event()
        self.background: set[asyncio.Task[None]] = set()  # late money on its way
        self.late_endpoint = "unknown"  # GET /v1/ops/late-payments: ok | missing
        self.began_at = datetime.now(UTC)
        # (provider, business day) -> how the end-of-run reconciliation of it ended
        self.reconciled: dict[tuple[str, date], str] = {}

    async def run(
        self, tamper: "Callable[[Chaos], Awaitable[None]] | None" = None
    ) -> dict[str, Any]:
        """The whole run; `tamper` (the self-test) runs after everything settled and before
        the end checks."""
        settings = self.stack.settings
        keys = json.loads(self.stack.dev_keys_path.read_text())
        limits = httpx.Limits(max_connections=self.opts.concurrency + 16)
        async with (
            httpx.AsyncClient(base_url=settings.api_url, timeout=30, limits=limits) as http,
            httpx.AsyncClient(base_url=settings.simulator_url, timeout=30) as sim,
        ):
            self.api = Api(http, keys, self.tally)
            self.sim = sim
            self.began_at = datetime.now(UTC)
            self.faults = Faults(self.stack, sim, self.tally)
            await self.faults.load_providers()
            began = time.monotonic()
            await self.setup_players()
            say(f"players ready in {time.monotonic() - began:.1f}s")
            plan = self.plan()
            reactor = asyncio.create_task(self.reactor())
            reporter = asyncio.create_task(self.reporter())
            began = time.monotonic()
            await asyncio.gather(self.submit(plan), self.fault_schedule())
            submit_seconds = time.monotonic() - began
            await self.faults.heal()
            say(
                f"submitted {self.tally.submitted} in {submit_seconds:.1f}s: "
                f"{self.tally.accepted} accepted, refused {dict(self.tally.refused)}"
            )
            settle_began = time.monotonic()
            open_left = await self.settle(timeout=self.opts.settle_timeout)
            late_left = await self.settle_late(timeout=max(60.0, self.opts.settle_timeout / 5))
            settle_seconds = time.monotonic() - settle_began
            self.finished.set()
            await asyncio.gather(reactor, reporter)
            recon_began = time.monotonic()
            await self.reconcile()
            recon_seconds = time.monotonic() - recon_began
            if tamper is not None:
                await tamper(self)
            report = await self.verify()
            report["timing"] = {
                "submit_seconds": round(submit_seconds, 1),
                "settle_seconds": round(settle_seconds, 1),
                "reconcile_seconds": round(recon_seconds, 1),
                "open_after_settle": open_left,
                "late_payments_not_taken_up_after_settle": late_left,
            }
            return report

    # -- setup -------------------------------------------------------------------------------

    async def setup_players(self) -> None:
        sem = asyncio.Semaphore(self.opts.concurrency)
        n = self.opts.players

        async def one(index: int) -> Player | None:
            async with sem:
                phone = f"+7701{self.rng.randint(1_000_000, 9_999_998):07d}"
                if phone.endswith("0000"):
                    phone = phone[:-1] + "1"
                body = {
                    "external_id": f"chaos-{uuid.uuid4().hex[:12]}",
                    "iin": make_iin(self.rng),
                    "full_name": f"Chaos Player {index}",
                    "phone": phone,
                }
                response = await self.api.call(
                    "POST", "/v1/players", body=body, key=uuid.uuid4().hex
                )
                if response.status_code != 201:
                    say(f"player refused: {response.status_code} {response.text[:200]}")
                    return None
                vip = index % 10 == 9
                player = Player(response.json()["id"], phone, make_card(self.rng), vip)
                funding = Payment(
                    "deposit",
                    "card",
                    player,
                    (4_000_000 if vip else 300_000) * TENGE,
                    "funding",
                )
                funding.body = self.deposit_body(funding, card_details(player.card))
                await self.create(funding)
                return player

        found = await asyncio.gather(*(one(i) for i in range(n)))
        self.players = [p for p in found if p is not None]
        say(f"{len(self.players)} players created, funding deposits submitted")
        funding = [p for p in self.payments if p.label == "funding" and p.id]
        await self.settle(timeout=300, quiet=True)
        statuses = {d["id"]: d["status"] for d in await self.api.list_all("/v1/deposits")}
        for payment in funding:
            payment.status = statuses.get(str(payment.id), payment.status)
        funded = 0
        for payment in funding:
            if payment.status == "succeeded":
                payment.player.funded = payment.amount
                funded += 1
        say(f"{funded}/{len(funding)} funding deposits succeeded")
        await self.load_card_tokens([p for p in funding if p.status == "succeeded"])

        async def turnover(player: Player) -> None:
            """Bets then wins of the same amount: turnover for the withdrawal rules, net zero."""
            async with sem:
                amount = player.funded * 8 // 10
                for _ in range(2):
                    round_id = uuid.uuid4().hex
                    for kind in ("bet", "win"):
                        response = await self.api.call(
                            "POST",
                            f"/v1/players/{player.id}/game-transactions",
                            key=uuid.uuid4().hex,
                            body={
                                "type": kind,
                                "amount": amount,
                                "currency": "KZT",
                                "round_id": round_id,
                            },
                        )
                        if response.status_code >= 300:
                            raise RuntimeError(f"game {kind} refused: {response.text[:300]}")

        await asyncio.gather(*(turnover(p) for p in self.players if p.funded))
        say("game turnover posted (bet + win, net zero)")

    async def load_card_tokens(self, funding: list[Payment]) -> None:
        assert self.stack.database_url
        payout_provider = self.stack.settings.payout_providers["card"]  # freedom by default
        engine = make_engine(self.stack.database_url, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session:
                rows = await session.execute(
                    text("SELECT id, card FROM deposits WHERE id = ANY(:ids)"),
                    {"ids": [p.id for p in funding]},
                )
                cards = {str(r[0]): r[1] for r in rows}
        finally:
            await engine.dispose()
        for payment in funding:
            tokens = (cards.get(str(payment.id)) or {}).get("tokens") or {}
            # A card payout goes to the card payout provider (Freedom Pay: to a card it
            # vaulted): only a card vaulted there can be paid back.
            payment.player.card_token = tokens.get(payout_provider)

    # -- the plan ------------------------------------------------------------------------------

    def deposit_body(self, payment: Payment, details: dict[str, Any]) -> dict[str, Any]:
        return {
            "player_id": payment.player.id,
            "amount": payment.amount,
            "currency": "KZT",
            "method": payment.method,
            "details": details,
        }

    def plan(self) -> list[Payment]:
        rng = self.rng
        funded = [p for p in self.players if p.funded]
        if not funded:
            raise RuntimeError("no player could be funded: see the logs")
        plan: list[Payment] = []
        for _ in range(self.opts.payments):
            roll = rng.random()
            if roll < 0.60:
                candidates = [p for p in funded if p.deposits < 3] or funded
                player = rng.choice(candidates)
                player.deposits += 1
                plan.append(self.plan_deposit(player, rng))
            else:
                player = rng.choice(funded)
                plan.append(self.plan_withdrawal(player, rng))
        # Two payments nobody finishes, so the end state has open payments that
        # /v1/ops/stuck must list with what they wait on: a bank transfer the player never
        # makes (72 h to pay) and a large withdrawal no operator looks at (it stays held).
        if len(plan) >= 20:
            player = plan[-1].player
            abandoned = Payment("deposit", "bank_transfer", player, 20_000 * TENGE, "abandoned")
            abandoned.body = self.deposit_body(abandoned, {})
            abandoned.expect_open = True
            plan[-1] = abandoned
            rich = [p for p in funded if p.funded - p.committed >= 1_200_000 * TENGE]
            if rich:
                unreviewed = self.plan_withdrawal(rich[0], rng, amount=1_200_000 * TENGE)
                unreviewed.label, unreviewed.review = "left_in_review", "leave"
                unreviewed.cancel, unreviewed.expect_open = False, True
                plan[-2] = unreviewed
            # Every kind of late or odd money at least once, early enough to play out.
            wanted = self.odd_labels()
            have = {p.label for p in plan}
            slots = [i for i, p in enumerate(plan[: len(plan) // 2]) if p.label == "card"]
            for label in (w for w in wanted if w not in have):
                if not slots:
                    break
                i = slots.pop(len(slots) // 2)
                plan[i] = self.odd_deposit(
                    plan[i].player, label, rng.randint(5_000, 50_000) * TENGE
                )
        return plan

    def plan_deposit(self, player: Player, rng: random.Random) -> Payment:
        amount = rng.randint(5_000, 50_000) * TENGE
        roll = rng.random()
        if roll < 0.55:
            label, number = "card", player.card
            if rng.random() < 0.06:
                label, number = "card_declined", DECLINED_CARD
            elif rng.random() < 0.04:
                label, number = "card_3ds", THREE_DS_CARD
            payment = Payment("deposit", "card", player, amount, label)
            payment.body = self.deposit_body(payment, card_details(number))
            return payment
        method = rng.choice(ASYNC_METHODS)
        odd = rng.random()
        if method == "bank_transfer" and odd < 0.36:
            labels = [label for label in self.odd_labels() if label.startswith("bank")]
            return self.odd_deposit(player, rng.choice(labels), amount)
        if method == "ewallet" and odd < 0.2:
            return self.odd_deposit(player, "ewallet_late_success", amount)
        payment = Payment("deposit", method, player, amount, method)
        details: dict[str, Any] = {}
        if method == "ewallet":
            details = {"wallet_account": player.phone}  # Freedom Pay's wallet: the phone
        payment.player_pays = rng.random() >= 0.10
        payment.body = self.deposit_body(payment, details)
        return payment

    def odd_labels(self) -> list[str]:
        """The odd deposits of this run. Amounts that are not the order's (over the amount on
        a live order, over or short-then-topped-up after the order ended) only in the full
        schedule: the platform does not take those up yet (reported by the full run), and
        the CI subset stays green on what it does."""
        labels = ["bank_short", "bank_late", "ewallet_late_success"]
        if self.opts.faults == "full":
            labels += ["bank_over", "bank_late_over", "bank_late_short"]
        return labels

    def odd_deposit(self, player: Player, label: str, amount: int) -> Payment:
        """A deposit whose money comes oddly: bank statement lines (`bank_short`: 60 % then
        the rest; `bank_over`: 1,000 tenge more; `bank_late` / `bank_late_over`: the player
        declines on the page, then transfers anyway), or an e-wallet order that expires unpaid
        and is reported paid afterwards (`ewallet_late_success`)."""
        method = "ewallet" if label.startswith("ewallet") else "bank_transfer"
        payment = Payment("deposit", method, player, amount, label)
        payment.player_pays = not label.startswith("bank_late")
        details = {"wallet_account": player.phone} if method == "ewallet" else {}
        payment.body = self.deposit_body(payment, details)
        return payment

    def plan_withdrawal(
        self, player: Player, rng: random.Random, *, amount: int | None = None
    ) -> Payment:
        available = player.funded - player.committed
        big: int | None = amount
        if big is None and player.vip and available >= 2_200_000 * TENGE and rng.random() < 0.5:
            big = rng.choice([1_200_000, 2_100_000]) * TENGE  # review; four-eyes over 2M
        amount = big or rng.randint(5_000, 20_000) * TENGE
        if amount > available:
            amount = max(1_000 * TENGE, available // 4)
        player.committed += amount
        roll = rng.random()
        if roll < 0.45:
            closed = rng.random() < 0.05
            payment = Payment(
                "withdrawal", "bank_transfer", player, amount, "iban_closed" if closed else "iban"
            )
            destination: dict[str, Any] = {"iban": make_iban(rng, closed=closed)}
        elif roll < 0.70 and player.card_token:
            payment = Payment("withdrawal", "card", player, amount, "card")
            destination = {"card_token": player.card_token}
        elif roll < 0.85:
            payment = Payment("withdrawal", "ewallet", player, amount, "ewallet")
            destination = {"wallet_account": player.phone}
        else:
            payment = Payment("withdrawal", "mobile_banking", player, amount, "mobile_banking")
            destination = {"phone": player.phone}
        if big:
            payment.label += "_large"
        payment.review = "reject" if rng.random() < 0.15 else "approve"
        payment.cancel = rng.random() < 0.03
        payment.body = {
            "player_id": player.id,
            "amount": amount,
            "currency": "KZT",
            "method": payment.method,
            "destination": destination,
        }
        return payment

    # -- driving ---------------------------------------------------------------------------------

    async def create(self, payment: Payment) -> None:
        self.payments.append(payment)
        path = "/v1/deposits" if payment.kind == "deposit" else "/v1/withdrawals"
        self.tally.submitted += 1
        while True:
            try:
                response = await self.api.call("POST", path, key=payment.key, body=payment.body)
            except httpx.HTTPError as exc:
                payment.refused = f"unreachable:{type(exc).__name__}"
                self.tally.refused[payment.refused] += 1
                return
            if not (response.status_code == 422 and self.reroute(payment, response)):
                break
        if response.status_code == 202:
            created = response.json()
            payment.id = created["id"]
            payment.workflow_id = created["workflow_id"]
            payment.status = created["status"]
            self.by_id[created["id"]] = payment
            self.tally.accepted += 1
            if payment.cancel:
                await self.cancel(payment)
            return
        try:
            code = str(response.json().get("code", response.status_code))
        except ValueError:
            code = str(response.status_code)
        payment.refused = code
        self.tally.refused[f"{payment.kind}:{code}"] += 1

    def reroute(self, payment: Payment, refused: httpx.Response) -> bool:
        """A withdrawal the closed loop refused (`closed_loop_required`: deposits go back first
        to the instruments they came from) goes, as the player would choose on the casino's
        page, to one of the `allowed_destinations` listed, up to what it may still take, under
        a new Idempotency-Key; one of those refused in turn (`card_not_payable`: a card the
        card payout provider never vaulted) to the next. False when refused otherwise, or when
        nothing listed is left."""
        if payment.kind != "withdrawal":
            return False
        try:
            problem = refused.json()
        except ValueError:
            return False
        code = problem.get("code")
        if code == "closed_loop_required" and payment.rerouted is None:
            payment.rerouted = payment.method
            payment.allowed = list(problem.get("allowed_destinations") or [])
        elif code != "card_not_payable" or payment.rerouted is None:
            return False
        while payment.allowed:
            allowed = payment.allowed.pop(0)
            method = str(allowed.get("method"))
            amount = min(payment.amount, int(allowed.get("up_to") or 0))
            destination = self.instrument(payment.player, method, str(allowed.get("destination")))
            if destination is None or amount < WITHDRAWAL_MIN:
                continue
            self.tally.rerouted[f"{payment.rerouted} -> {method}"] += 1
            payment.method, payment.amount, payment.key = method, amount, uuid.uuid4().hex
            payment.body = {
                **payment.body,
                "amount": amount,
                "method": method,
                "destination": destination,
            }
            return True
        return False

    def instrument(self, player: Player, method: str, label: str) -> dict[str, Any] | None:
        """A withdrawal destination for an instrument the closed loop names by its label (a
        masked card, a wallet account, a masked phone): the player's succeeded card deposit
        of that card (the API pays it back to the card's token at the payout provider), the
        wallet account, the player's phone."""
        if method == "ewallet" and label.startswith("wallet "):
            return {"wallet_account": label.removeprefix("wallet ")}
        if method == "mobile_banking":
            return {"phone": player.phone}
        if method != "card":
            return None
        bin_, last4 = label.removeprefix("card ")[:6], label[-4:]
        for p in self.payments:
            card = (p.body.get("details") or {}).get("card") or {}
            number = str(card.get("number", ""))
            if (
                p.kind == "deposit"
                and p.player is player
                and p.id
                and p.status == "succeeded"
                and number.startswith(bin_)
                and number.endswith(last4)
            ):
                return {"deposit_id": p.id}
        return None

    async def cancel(self, payment: Payment) -> None:
        response = await self.api.call("POST", f"/v1/withdrawals/{payment.id}/cancel")
        outcome = "cancelled" if response.status_code == 200 else str(response.status_code)
        self.tally.cancels[outcome] += 1

    async def submit(self, plan: list[Payment]) -> None:
        sem = asyncio.Semaphore(self.opts.concurrency)
        tasks: list[asyncio.Task[None]] = []
        interval = 1.0 / self.opts.rate
        start = time.monotonic()

        async def one(payment: Payment) -> None:
            async with sem:
                await self.create(payment)

        for n, payment in enumerate(plan):
            wait = start + n * interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await sem.acquire()  # backpressure: never more than `concurrency` in flight
            sem.release()
            tasks.append(asyncio.create_task(one(payment)))
            self.progress = (n + 1) / len(plan)
            self.progressed.set()
        await asyncio.gather(*tasks)
        self.done_submitting.set()
        self.progressed.set()

    async def fault_schedule(self) -> None:
        for at, label, action in schedule(self.opts.faults, pg_restart=self.opts.pg_restart):
            while self.progress < at and not self.done_submitting.is_set():
                self.progressed.clear()
                await self.progressed.wait()
            await self.faults.apply(f"{label} at {at:.0%}", action)

    async def reactor(self) -> None:
        """The players and operators: act on pages and review queues as payments get there."""
        while not self.finished.is_set():
            try:
                await self.react_once()
            except httpx.HTTPError as exc:
                say(f"reactor: {type(exc).__name__} (retrying)")
            await asyncio.sleep(1.0)

    async def react_once(self) -> None:
        waiting = await self.api.list_all("/v1/deposits?status=requires_action")
        actions = []
        for item in waiting:
            payment = self.by_id.get(item["id"])
            if payment is None or payment.expect_open:
                continue
            if not payment.acted and item.get("provider"):
                payment.acted = True
                actions.append(self.player_acts(payment, item["provider"]))
        review = await self.api.list_all("/v1/withdrawals?status=in_review")
        for item in review:
            payment = self.by_id.get(item["id"])
            if payment is not None and payment.review != "leave":
                actions.append(self.operator_reviews(payment))
        # Deposits the risk engine held for a person (paid, not credited): an operator looks.
        held = await self.api.list_all("/v1/deposits?status=in_review")
        for item in held:
            payment = self.by_id.get(item["id"])
            if payment is not None and ("operator", "approve") not in payment.reviewed:
                actions.append(self.operator_approves_deposit(payment))
        await asyncio.gather(*actions)

    async def operator_approves_deposit(self, payment: Payment) -> None:
        response = await self.api.call(
            "POST", f"/v1/deposits/{payment.id}/approve", role="operator", body={}
        )
        if response.status_code < 300 or response.status_code == 409:
            payment.reviewed.add(("operator", "approve"))
            self.tally.reviews[f"deposit approve {response.status_code}"] += 1

    async def player_acts(self, payment: Payment, provider: str) -> None:
        await asyncio.sleep(self.rng.uniform(0.0, 1.5))  # a person takes a moment
        if payment.label in ("bank_short", "bank_over"):
            self.spawn(payment, self.transfer_oddly(payment, provider))
            return
        if payment.label == "ewallet_late_success":
            self.spawn(payment, self.expire_then_paid(payment, provider))
            return
        base = f"/pay/{provider}/{payment.id}"
        if not payment.player_pays and payment.method == "aggregator":
            # ioka's checkout keeps an order open after a declined card (the player may try
            # again until its due date): a player who gives up leaves it unpaid until it is due.
            path = f"/admin/providers/{provider}/payments/{payment.id}/expire"
            what = "left unpaid until due"
        elif not payment.player_pays:
            path, what = f"{base}/decline", "declined"
        elif payment.method == "bank_transfer":
            path, what = f"{base}/transfer?amount={payment.amount}", "paid"
        elif payment.method == "aggregator":
            path, what = f"{base}/confirm?method=card", "paid"
        else:
            path, what = f"{base}/confirm", "paid"
        try:
            response = await self.sim.post(path, headers={"accept": "application/json"})
        except httpx.HTTPError:
            payment.acted = False  # try again at the next look
            return
        if response.status_code >= 500:
            payment.acted = False
            return
        self.tally.player_actions[what if response.status_code < 300 else "too_late"] += 1
        if payment.label.startswith("bank_late") and response.status_code < 300:
            self.spawn(payment, self.transfer_late(payment, provider))

    def spawn(self, payment: Payment, work: Awaitable[None]) -> None:
        """Late or odd money, on its way in the background (awaited by `settle_late`); one
        that could not be made is a fault that did not apply."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                self.faults.failed(f"{payment.label} {payment.id}: {type(exc).__name__}: {exc}")

        task = asyncio.create_task(guarded())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def statement_line(self, provider: str, amount: int, purpose: str) -> dict[str, Any]:
        """A transfer landing on the collection account: a line of the bank's statement."""
        try:
            response = await sim_call(
                self.sim,
                "POST",
                f"/admin/providers/{provider}/statement-lines",
                body={"amount": amount, "currency": "KZT", "purpose": purpose, "payer_name": "X"},
            )
        except httpx.HTTPStatusError as exc:
            raise FaultNotApplied(
                f"statement line answered {exc.response.status_code}: {exc.response.text[:200]}"
            ) from exc
        line: dict[str, Any] = response.json()
        return line

    async def transfer_oddly(self, payment: Payment, provider: str) -> None:
        """`bank_short`: 60 % of the amount, then the rest a few seconds later (the order is
        paid exactly once both landed); `bank_over`: 1,000 tenge more than ordered."""
        assert payment.id
        async with self.faults.money_window():
            await self.transfer_oddly_now(payment, provider)

    async def transfer_oddly_now(self, payment: Payment, provider: str) -> None:
        assert payment.id
        if payment.label == "bank_short":
            part = payment.amount * 6 // 10 // TENGE * TENGE
            first = await self.statement_line(
                provider, part, f"Deposit {payment.id} part 1 of 2, thank you"
            )
            if first.get("amount_check") != "short":
                raise FaultNotApplied(f"short line not matched as short: {first}")
            await asyncio.sleep(4.0)
            rest = await self.statement_line(
                provider, payment.amount - part, f"rest of {payment.id.upper()}"
            )
            if rest.get("amount_check") != "exact":
                raise FaultNotApplied(f"topping up did not make it exact: {rest}")
            self.tally.statement_lines["short, then topped up"] += 1
        else:
            over = await self.statement_line(
                provider, payment.amount + 1_000 * TENGE, f"{payment.id} deposit + 1000 extra"
            )
            if over.get("amount_check") != "over":
                raise FaultNotApplied(f"over line not matched as over: {over}")
            payment.not_waited = True
            self.tally.statement_lines["over the amount"] += 1

    async def wait_terminal(self, payment: Payment, timeout: float = 180.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await self.refresh(payment)
            if status in DEPOSIT_TERMINAL:
                return status
            await asyncio.sleep(2.0)
        return None

    async def transfer_late(self, payment: Payment, provider: str) -> None:
        """`bank_late` / `bank_late_over`: the player declined on the page, the deposit ended;
        then the transfer lands anyway (exact, or 500 tenge over)."""
        assert payment.id
        status = await self.wait_terminal(payment)
        if status is None:
            raise FaultNotApplied("the declined deposit never ended: no late transfer made")
        async with self.faults.money_window():
            await self.transfer_late_now(payment, provider, status)

    async def transfer_late_now(self, payment: Payment, provider: str, status: str) -> None:
        assert payment.id
        over = 500 * TENGE if payment.label == "bank_late_over" else 0
        first = payment.amount // 2 // TENGE * TENGE if payment.label == "bank_late_short" else 0
        if first:
            short = await self.statement_line(provider, first, f"order {payment.id}, part 1")
            if not short.get("late") or short.get("amount_check") != "short":
                raise FaultNotApplied(f"late short line not matched as late and short: {short}")
            await asyncio.sleep(4.0)
        line = await self.statement_line(
            provider, payment.amount + over - first, f"sorry for the delay, order {payment.id}"
        )
        if line.get("matched_reference") != payment.id:
            raise FaultNotApplied(f"late line not matched: {line}")
        if not first and not line.get("late"):
            raise FaultNotApplied(f"late line not matched as late: {line}")
        payment.late = True
        how = ", over" if over else (", short then topped up" if first else "")
        self.tally.statement_lines[f"late after the deposit was {status}{how}"] += 1

    async def expire_then_paid(self, payment: Payment, provider: str) -> None:
        """`ewallet_late_success`: the player never pays; the order expires at the provider,
        which reports it paid afterwards (`late_success_after_expiry`)."""
        assert payment.id
        async with self.faults.money_window():
            await self.expire_then_paid_now(payment, provider)

    async def expire_then_paid_now(self, payment: Payment, provider: str) -> None:
        assert payment.id
        if not await self.faults.apply(
            f"late success at {provider}", lambda f: f.late_success(provider)
        ):
            return
        path = f"/admin/providers/{provider}/payments/{payment.id}"
        expired = (await sim_call(self.sim, "POST", f"{path}/expire")).json()
        if expired.get("status") not in ("expired", "succeeded"):
            raise FaultNotApplied(f"order not expired: {expired.get('status')}")
        deadline = time.monotonic() + 90.0
        while time.monotonic() < deadline:
            found = (await sim_call(self.sim, "GET", path)).json()
            if (found.get("payment") or {}).get("status") == "succeeded":
                payment.late = True
                self.tally.late_money["e-wallet order paid after it expired"] += 1
                return
            await asyncio.sleep(2.0)
        raise FaultNotApplied("the expired order was never reported paid")

    async def operator_reviews(self, payment: Payment) -> None:
        item = await self.api.get_json(f"/v1/withdrawals/{payment.id}")
        if item["status"] != "in_review":
            return
        if payment.review == "reject":
            steps = [("operator", "reject")]
        else:
            steps = [("operator", "approve"), ("admin", "approve")][: item["approvals_needed"]]
        for role, action in steps:
            if (role, action) in payment.reviewed:
                continue
            body = {"reason": "chaos: not convinced"} if action == "reject" else {}
            response = await self.api.call(
                "POST", f"/v1/withdrawals/{payment.id}/{action}", role=role, body=body
            )
            if response.status_code < 300 or response.status_code == 409:
                payment.reviewed.add((role, action))
                self.tally.reviews[f"{action} {response.status_code}"] += 1

    async def reporter(self) -> None:
        last = ""
        while not self.finished.is_set():
            await asyncio.sleep(5.0)
            line = (
                f"progress: submitted {self.tally.submitted} accepted {self.tally.accepted} "
                f"refused {sum(self.tally.refused.values())} retries {self.tally.retries} | "
                f"player actions {dict(self.tally.player_actions)} reviews "
                f"{dict(self.tally.reviews)}"
            )
            if line != last:
                say(line)
                last = line

    async def refresh(self, payment: Payment, sem: asyncio.Semaphore | None = None) -> str | None:
        if payment.id is None:
            return None
        path = f"/v1/{payment.kind}s/{payment.id}"
        if sem is None:
            data = await self.api.get_json(path)
        else:
            async with sem:
                data = await self.api.get_json(path)
        payment.status = data["status"]
        payment.provider = data.get("provider")
        payment.ledger_kinds = [t["kind"] for t in data.get("ledger", [])]
        payment.attempts = [
            f"{a['provider']} {a['step']}:{a['outcome']}"
            + (f":{a['error_code']}" if a.get("error_code") else "")
            for a in data.get("attempts", [])
        ]
        return payment.status

    async def open_ids(self) -> set[str]:
        ids: set[str] = set()
        for status in DEPOSIT_OPEN:
            ids |= {d["id"] for d in await self.api.list_all(f"/v1/deposits?status={status}")}
        for status in WITHDRAWAL_OPEN:
            ids |= {w["id"] for w in await self.api.list_all(f"/v1/withdrawals?status={status}")}
        return ids & set(self.by_id)

    async def settle(self, *, timeout: float, quiet: bool = False) -> int:
        """Wait until none of our payments is open but those left unfinished on purpose (or
        the timeout); how many are still open."""
        deadline = time.monotonic() + timeout
        last = 0.0
        while True:
            open_now = {
                i
                for i in await self.open_ids()
                if not (self.by_id[i].expect_open or self.by_id[i].not_waited)
            }
            if not open_now or time.monotonic() > deadline:
                say(f"settled: {len(open_now)} payment(s) still open")
                return len(open_now)
            if not quiet or time.monotonic() - last > 10:
                by_kind = Counter(self.by_id[i].kind for i in open_now)
                say(f"waiting for {len(open_now)} open payment(s): {dict(by_kind)}")
                last = time.monotonic()
            await asyncio.sleep(3.0)

    # -- the day's reconciliation -------------------------------------------------------------

    def business_days(self) -> list[date]:
        """The run's business days (Asia/Almaty): usually one, two across midnight."""
        first, last = business_day(self.began_at), business_day(datetime.now(UTC))
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    async def provider_days(self, day: date) -> list[dict[str, Any]]:
        """`GET /v1/finance/recon?date=`: every provider's day with money in its books."""
        data = await self.api.get_json(f"/v1/finance/recon?date={day.isoformat()}", role="operator")
        rows: list[dict[str, Any]] = data["data"]
        return rows

    def providers_used(self) -> set[str]:
        used = {p.provider for p in self.payments if p.provider}
        used |= {attempt.split(" ", 1)[0] for p in self.payments for attempt in p.attempts}
        return used

    async def reconcile(self, *, timeout: float = RECON_TIMEOUT_SECONDS) -> None:
        """That day's reconciliation, as an operator starts it: `POST /v1/recon/runs {provider,
        date}` with the operator key for each provider the run used (and any other with money
        in its books that day) and each business day of the run, then each run awaited. How
        each ended is kept for the clearing check (`check_clearing`)."""
        client = await Client.connect(
            self.stack.settings.temporal_target, namespace=self.stack.settings.temporal_namespace
        )
        started: dict[tuple[str, date], str] = {}
        for day in self.business_days():
            booked = {row["provider"] for row in await self.provider_days(day)}
            for provider in sorted(self.providers_used() | booked):
                response = await self.api.call(
                    "POST",
                    "/v1/recon/runs",
                    role="operator",
                    body={"provider": provider, "date": day.isoformat()},
                )
                if response.status_code != 202:
                    problem = response.json() if response.content else {}
                    code = problem.get("code") or problem.get("title") or response.status_code
                    self.reconciled[(provider, day)] = f"not started: {code}"
                    continue
                started[(provider, day)] = response.json()["workflow_id"]

        async def finished(key: tuple[str, date], workflow_id: str) -> None:
            handle = client.get_workflow_handle(workflow_id)
            try:
                result = await asyncio.wait_for(handle.result(), timeout)
            except TimeoutError:
                self.reconciled[key] = f"not finished after {timeout:.0f} s"
                return
            except WorkflowFailureError as exc:
                cause = exc.cause or exc
                self.reconciled[key] = f"failed: {cause}"[:200]
                return
            cases = result.get("cases_open", 0) if isinstance(result, dict) else 0
            status = result.get("status", "?") if isinstance(result, dict) else "?"
            self.reconciled[key] = f"{status}, {cases} case(s) open"

        await asyncio.gather(*(finished(key, wid) for key, wid in started.items()))
        for (provider, day), how in sorted(self.reconciled.items()):
            say(f"reconciled {provider} {day}: {how}")

    async def check_clearing(self) -> list[ClearingDay]:
        """Each provider's books for each day of the run after its reconciliation."""
        days: list[ClearingDay] = []
        for day in self.business_days():
            for row in await self.provider_days(day):
                how = self.reconciled.get((str(row["provider"]), day), "not reconciled")
                days.append(ClearingDay.from_json(row, how))
        return days

    # -- verification --------------------------------------------------------------------------

    async def late_cases(self) -> dict[str, list[LateCase]]:
        """`GET /v1/ops/late-payments` by deposit; a 404 (not there yet) counts as no cases,
        with a warning."""
        cases: list[LateCase] = []
        path = "/v1/ops/late-payments?limit=200"
        cursor: str | None = None
        while True:
            response = await self.api.call(
                "GET", path + (f"&cursor={cursor}" if cursor else ""), role="operator"
            )
            if response.status_code == 422 and "limit" in path:
                path = "/v1/ops/late-payments?"  # no limit parameter there
                continue
            if response.status_code == 404:
                if self.late_endpoint != "missing":
                    say("WARNING: GET /v1/ops/late-payments answered 404: counting no cases")
                self.late_endpoint = "missing"
                return {}
            response.raise_for_status()
            self.late_endpoint = "ok"
            page = response.json()
            cases += [LateCase.from_json(row) for row in page.get("data", [])]
            cursor = page.get("next_cursor")
            if not cursor:
                return cases_by_deposit(cases)

    async def settle_late(self, *, timeout: float) -> int:
        """Wait for the late money (statement lines after the deposit ended, orders reported
        paid after they expired) to be made, then for the platform to take each up: the
        deposit credited (succeeded) or a late-payment case opened, and each of its cases that
        a policy applies to (not `manual`: an operator's) resolved. How many were not."""
        if self.background:
            say(f"waiting for {len(self.background)} late / odd payment(s) to be made")
            await asyncio.gather(*list(self.background))
        late = [p for p in self.payments if p.late and p.id]
        deadline = time.monotonic() + timeout
        while True:
            cases = await self.late_cases()
            waiting = []
            for p in late:
                await self.refresh(p)
                found = cases.get(str(p.id), [])
                if (p.status != "succeeded" and not found) or any(
                    not c.resolved and c.policy != "manual" for c in found
                ):
                    waiting.append(p)
            if not waiting or time.monotonic() > deadline:
                say(f"{len(late)} late payment(s) made, {len(waiting)} not taken up")
                return len(waiting)
            say(f"waiting for the platform to take up {len(waiting)} late payment(s)")
            await asyncio.sleep(3.0)

    async def verify(self) -> dict[str, Any]:
        accepted = [p for p in self.payments if p.id]
        sem = asyncio.Semaphore(8)
        client = await Client.connect(
            self.stack.settings.temporal_target, namespace=self.stack.settings.temporal_namespace
        )
        lost: list[str] = []
        workflows: Counter[str] = Counter()
        workflow_of: dict[str, str] = {}

        async def exists(payment: Payment) -> None:
            try:
                await self.refresh(payment, sem)
            except httpx.HTTPStatusError:
                lost.append(f"{payment.id}: not readable over the API")
                return
            async with sem:
                try:
                    assert payment.workflow_id
                    described = await client.get_workflow_handle(payment.workflow_id).describe()
                    state = described.status.name if described.status else "UNKNOWN"
                    workflows[state] += 1
                    workflow_of[str(payment.id)] = state
                except RPCError as exc:
                    lost.append(f"{payment.id}: no workflow ({exc})")

        await asyncio.gather(*(exists(p) for p in accepted))
        say(f"checked {len(accepted)} accepted payments: {len(lost)} lost")

        late = await self.late_cases()
        held = await self.load_held(accepted, sem)
        money = self.check_provider_money(accepted, held, late)

        stuck = await self.api.get_json("/v1/ops/stuck?older_than=0s&limit=500", role="operator")
        stuck_by_id = {s["id"]: s for s in stuck["data"]}
        open_payments = [
            p
            for p in accepted
            if p.status not in (DEPOSIT_TERMINAL if p.kind == "deposit" else WITHDRAWAL_TERMINAL)
        ]
        listed, unexplained = judge_open(
            [
                OpenPayment(
                    id=str(p.id),
                    kind=p.kind,
                    status=str(p.status),
                    expect_open=p.expect_open,
                    workflow=workflow_of.get(str(p.id)),
                    money=", ".join(h.describe() for h in held.get(str(p.id), [])),
                )
                for p in open_payments
            ],
            stuck_by_id,
        )

        credited_late = {
            deposit for deposit, found in late.items() if any(c.credited for c in found)
        }
        ledger = self.check_postings(accepted, credited_late)
        wallets = await self.check_wallets(sem, credited_late)
        invariants = await self.check_invariants()
        clearing = await self.check_clearing()

        statuses: dict[str, Counter[str]] = defaultdict(Counter)
        for p in accepted:
            statuses[f"{p.kind} {p.label if p.kind == 'deposit' else p.method}"][str(p.status)] += 1
        finals = Counter(f"{p.kind}:{p.status}" for p in accepted)
        attempts = Counter(a for p in accepted for a in p.attempts)
        retried = sum(1 for p in accepted if len(p.attempts) > 1)
        providers: dict[str, Counter[str]] = defaultdict(Counter)
        for p in accepted:
            if p.kind == "deposit" and p.method == "card":
                providers[p.label][f"{p.provider}:{p.status}"] += 1
        all_cases = [c for found in late.values() for c in found]
        ours = [c for c in all_cases if c.deposit_id in self.by_id]
        return {
            "payments_planned": self.opts.payments,
            "players": len(self.players),
            "submitted": self.tally.submitted,
            "accepted": len(accepted),
            "refused": dict(self.tally.refused),
            "request_retries": self.tally.retries,
            "final_status": dict(sorted(finals.items())),
            "by_method": {k: dict(v) for k, v in sorted(statuses.items())},
            "card_deposits_by_provider": {k: dict(v) for k, v in sorted(providers.items())},
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "provider_attempts": dict(attempts.most_common()),
            "payments_with_several_attempts": retried,
            "player_actions": dict(self.tally.player_actions),
            "reviews": dict(self.tally.reviews),
            "cancels": dict(self.tally.cancels),
            "withdrawals_rerouted": dict(self.tally.rerouted),
            "faults": self.tally.faults,
            "faults_failed": self.tally.fault_failures,
            "faults_unfired": self.tally.unfired,
            "statement_lines": dict(self.tally.statement_lines),
            "late_money": dict(self.tally.late_money),
            "late_payments_made": sum(1 for p in accepted if p.late),
            "late_payments_endpoint": self.late_endpoint,
            "late_payment_cases": dict(
                Counter(f"{c.provider} {c.policy} {c.resolution}" for c in ours)
            ),
            "open": len(open_payments),
            "open_on_purpose": sum(1 for p in open_payments if p.expect_open),
            "stuck_listed": listed,
            "open_without_reason": unexplained,
            "workflow_status": dict(workflows),
            "temporal_only": len(stuck.get("temporal_only", [])),
            "lost": lost,
            **money,
            "ledger_postings_wrong": ledger,
            "wallets_wrong": wallets,
            "ledger_invariants": invariants,
            "reconciliation": {f"{p} {d}": how for (p, d), how in sorted(self.reconciled.items())},
            "clearing": [dataclasses.asdict(day) for day in clearing],
            "unexplained_clearing": judge_clearing(clearing),
        }

    async def load_held(
        self, accepted: list[Payment], sem: asyncio.Semaphore
    ) -> dict[str, list[Held]]:
        """What every simulated provider holds under each payment's reference."""
        held: dict[str, list[Held]] = {}

        async def one(p: Payment) -> None:
            async with sem:
                response = await sim_call(self.sim, "GET", f"/admin/charges?reference={p.id}")
            held[str(p.id)] = [Held.from_json(row) for row in response.json()]

        await asyncio.gather(*(one(p) for p in accepted))
        return held

    @staticmethod
    def check_provider_money(
        accepted: list[Payment],
        held: dict[str, list[Held]],
        late: dict[str, list[LateCase]],
    ) -> dict[str, list[str]]:
        """Double charges, double payouts and dropped late payments (`chaos_checks`)."""
        facts = [
            Money(
                id=str(p.id),
                kind=p.kind,
                status=str(p.status),
                terminal=p.status
                in (DEPOSIT_TERMINAL if p.kind == "deposit" else WITHDRAWAL_TERMINAL),
                provider=p.provider,
                amount=p.amount,
            )
            for p in accepted
        ]
        return judge_money(facts, held, late).as_dict()

    @staticmethod
    def check_postings(
        accepted: list[Payment], credited_late: set[str] | frozenset[str] = frozenset()
    ) -> list[str]:
        """Each payment's postings: a deposit's wallet credit once when it succeeded (or a
        late-payment case says it was credited), never otherwise; a withdrawal's hold, then
        exactly one of paid / released once it ended."""
        wrong: list[str] = []
        for p in accepted:
            kinds = Counter(p.ledger_kinds)
            if p.kind == "deposit":
                credits = sum(n for kind, n in kinds.items() if kind.endswith("credit"))
                ok = credits == (1 if p.status == "succeeded" or p.id in credited_late else 0)
            elif p.status == "paid":
                ok = kinds["withdrawal_hold"] == 1 and kinds["withdrawal_paid"] == 1
                ok = ok and kinds["withdrawal_released"] == 0
            elif p.status in WITHDRAWAL_TERMINAL:
                ok = kinds["withdrawal_hold"] == 1 and kinds["withdrawal_released"] == 1
                ok = ok and kinds["withdrawal_paid"] == 0
            else:
                ok = kinds["withdrawal_hold"] == 1 and not (
                    kinds["withdrawal_paid"] or kinds["withdrawal_released"]
                )
            if not ok:
                wrong.append(f"{p.id} {p.kind} {p.status}: {dict(kinds)}")
        return wrong

    async def check_wallets(
        self, sem: asyncio.Semaphore, credited_late: set[str] | frozenset[str] = frozenset()
    ) -> list[str]:
        wrong: list[str] = []
        expected: dict[str, list[int]] = {p.id: [0, 0] for p in self.players}
        for p in self.payments:
            if not p.id:
                continue
            book = expected[p.player.id]
            if p.kind == "deposit" and (p.status == "succeeded" or p.id in credited_late):
                book[0] += p.amount
            elif p.kind == "withdrawal" and p.status == "paid":
                book[0] -= p.amount
            elif p.kind == "withdrawal" and p.status not in WITHDRAWAL_TERMINAL:
                book[0] -= p.amount
                book[1] += p.amount

        async def one(player: Player) -> None:
            async with sem:
                data = await self.api.get_json(f"/v1/players/{player.id}")
            balance = data["balance"]
            want_available, want_held = expected[player.id]
            if (balance["available"], balance["held"]) != (want_available, want_held):
                wrong.append(
                    f"{player.id}: available {balance['available']} held {balance['held']}, "
                    f"expected {want_available} / {want_held}"
                )

        await asyncio.gather(*(one(p) for p in self.players))
        return wrong

    async def check_invariants(self) -> dict[str, Any]:
        assert self.stack.database_url
        engine = make_engine(self.stack.database_url, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session:
                results = await run_checks(session)
        finally:
            await engine.dispose()
        return {r.name: ("ok" if r.ok else r.offenders[:10]) for r in results}


# -- reporting and entry point -------------------------------------------------------------------


# Each end check: a list of lines in the report, each line one breach.
CHECKS = (
    "lost",
    "double_charges",
    "charge_mismatch",
    "dropped_late_payments",
    "late_payments_wrong",
    "double_payouts",
    "payout_mismatch",
    "ledger_postings_wrong",
    "wallets_wrong",
    "open_without_reason",
    "faults_failed",
    "unexplained_clearing",
)


def breaches(report: dict[str, Any]) -> list[str]:
    found = [f"{key}: {len(report[key])}" for key in CHECKS if report[key]]
    found += [f"ledger: {name}" for name, v in report["ledger_invariants"].items() if v != "ok"]
    return found


def figures(report: dict[str, Any]) -> str:
    return (
        f"lost {len(report['lost'])}, double charges {len(report['double_charges'])}, "
        f"double payouts {len(report['double_payouts'])}, dropped late payments "
        f"{len(report['dropped_late_payments'])} (late payments made "
        f"{report['late_payments_made']}, cases {report['late_payment_cases'] or 0}), "
        f"unexplained clearing {len(report['unexplained_clearing'])} of "
        f"{len(report['clearing'])} provider days"
    )


def print_report(report: dict[str, Any]) -> None:
    print("\n=== chaos run ===", flush=True)
    print(
        f"players {report['players']}, payments submitted {report['submitted']} (incl. "
        f"{report['players']} funding), accepted {report['accepted']}, refused "
        f"{report['refused'] or 0}, request retries {report['request_retries']}"
    )
    print("final status:")
    for key, count in report["final_status"].items():
        print(f"  {key:<28} {count}")
    print("by method (deposits by what the plan meant):")
    for key, counts in report["by_method"].items():
        print(f"  {key:<32} {counts}")
    print("card deposits by provider:")
    for key, counts in report["card_deposits_by_provider"].items():
        print(f"  {key:<28} {counts}")
    print(
        f"provider calls ({report['payments_with_several_attempts']} payments needed more than "
        f"one): {report['provider_attempts']}"
    )
    print(
        f"player actions {report['player_actions']}, reviews {report['reviews']}, "
        f"cancels {report['cancels']}; withdrawals sent back the way the money came (closed "
        f"loop) {report['withdrawals_rerouted'] or 0}"
    )
    print(
        f"bank statement lines {report['statement_lines'] or 0}; late money "
        f"{report['late_money'] or 0}; late-payment cases ({report['late_payments_endpoint']}): "
        f"{report['late_payment_cases'] or 0}"
    )
    print(f"faults applied ({len(report['faults'])}):")
    for fault in report["faults"]:
        print(f"  - {fault}")
    if report["faults_unfired"]:
        print(f"one-shot faults no call met (not a breach): {report['faults_unfired']}")
    print(
        f"timing: {report['timing']}; machine: {report['cpus']} CPUs, load average "
        f"{report['load_average']} at the end"
    )
    print(
        f"open at the end: {report['open']} ({report['open_on_purpose']} left unfinished on "
        f"purpose; with a real reason from /v1/ops/stuck: {len(report['stuck_listed'])})"
    )
    print(
        f"workflows: {report['workflow_status']}; running in Temporal while finished in the "
        f"database: {report['temporal_only']}"
    )
    for line in report["stuck_listed"][:20]:
        print(f"  stuck {line}")
    print("clearing after the day's reconciliation (explained: zero, or the open cases' money):")
    for row in clearing_table([ClearingDay(**day) for day in report["clearing"]]):
        print(f"  {row}")
    for key in CHECKS:
        print(f"{key:<26} {len(report[key])}")
        for line in report[key][:10]:
            print(f"    {line}")
    print("ledger invariants:")
    for name, verdict in report["ledger_invariants"].items():
        print(
            f"  {'ok' if verdict == 'ok' else 'BREACH'}  {name}"
            + ("" if verdict == "ok" else f" {verdict}")
        )
    print(f"FIGURES: {figures(report)}")
    found = breaches(report)
    print(
        "RESULT: "
        + (
            "PASS (zero lost, zero double, no late payment dropped, every fault applied, "
            "ledger balanced, every provider's clearing settled or explained by open cases)"
            if not found
            else "FAIL " + "; ".join(found)
        ),
        flush=True,
    )


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="a short run, then breaches planted on purpose: exit 0 only if each is reported "
        "(default then: 12 payments, 8 players, faults selftest, no PostgreSQL restart)",
    )
    parser.add_argument("--payments", type=int, default=None, help="mixed payments (1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most")
    parser.add_argument("--rate", type=float, default=4.0, help="payments submitted per second")
    parser.add_argument("--players", type=int, default=0, help="default: payments / 4, >= 8")
    parser.add_argument("--faults", choices=["full", "short", "selftest"], default=None)
    parser.add_argument("--no-pg-restart", action="store_true", help="skip the PostgreSQL restart")
    parser.add_argument("--settle-timeout", type=float, default=None, help="seconds (600)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="report file")
    args = parser.parse_args(argv)
    selftest = bool(args.self_test)
    payments = args.payments if args.payments is not None else (12 if selftest else 1000)
    return Options(
        payments=payments,
        concurrency=args.concurrency,
        rate=args.rate,
        players=args.players or max(8, math.ceil(payments / 4)),
        faults=args.faults or ("selftest" if selftest else "full"),
        pg_restart=not (args.no_pg_restart or selftest),
        settle_timeout=args.settle_timeout or (120.0 if selftest else 600.0),
        seed=args.seed,
        data_dir=args.data_dir,
        keep=args.keep,
        json_out=args.json_out,
        self_test=selftest,
    )


def _interrupt(signum: int, _: FrameType | None) -> None:
    """Ctrl-C or SIGTERM anywhere (also inside the event loop) ends the run; `finally` then
    stops the stack's processes, which run in their own sessions."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    for name, value in CHAOS_ENV.items():
        os.environ.setdefault(name, value)  # the stack's processes inherit these
    data_dir = opts.data_dir or Path(tempfile.mkdtemp(prefix="kzpay-chaos-")) / "data"
    api_port, sim_port = free_port(), free_port()
    settings = Settings(
        data_dir=data_dir,
        api_port=api_port,
        simulator_port=sim_port,
        simulator_url=f"http://127.0.0.1:{sim_port}",
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        temporal_task_queue=os.environ["PAY_TEMPORAL_TASK_QUEUE"],
    )
    stack = Stack(settings, say=say)
    say(
        f"chaos: {opts.payments} payments, {opts.players} players, rate {opts.rate}/s, "
        f"concurrency {opts.concurrency}, faults {opts.faults}"
        f"{'' if opts.pg_restart else ' (no PostgreSQL restart)'}; data in {data_dir}"
    )
    selftest = None
    if opts.self_test:
        from bench.chaos_selftest import SelfTest  # it imports this module

        selftest = SelfTest()
    report: dict[str, Any] | None = None
    try:
        stack.start()
        report = asyncio.run(
            Chaos(opts, stack).run(selftest.plant if selftest is not None else None)
        )
    finally:
        stack.stop()
    print_report(report)
    # A self-test fails when a planted breach goes unreported; a run, on any breach.
    failed = selftest.judge(report) != 0 if selftest is not None else bool(breaches(report))
    if opts.json_out:
        opts.json_out.write_text(json.dumps(report, indent=2, default=str))
    if failed or opts.keep:
        say(f"data and logs kept in {data_dir}")
    elif opts.data_dir is None:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
