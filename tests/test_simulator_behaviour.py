"""The simulator misbehaves like real acquirers, wallets and banks: driven over HTTP against the
simulator process (the session's `simulator_url`), each knob shown doing what it says on the real
providers of the default routing, through the platform's own connector clients
(`providers.connectors.*`, built by `providers.registry.build_client`) or raw HTTP in the
provider's own format. What the connector makes of each answer (refused, not processed, outcome
unknown) is asserted with it: the knob reached the provider's API as that provider answers.

Callbacks land on a tiny HTTP receiver on 127.0.0.1 started by the test (`CallbackReceiver`), from
providers that send them (ioka's webhook, KazBank's callback URL); Kaspi sends none: its knobs
are shown by polling.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from config import Settings
from providers.card import CardData, CardProviderClient
from providers.connectors.freedom_pay import merchant_id, new_salt, read_answer, signed_form
from providers.connectors.freedom_pay_wallet import FreedomPayWalletClient
from providers.connectors.ioka import IokaClient
from providers.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnreachable,
    outcome_known,
)
from providers.payments import PaymentOutcome, PaymentProviderClient
from providers.payout import PayoutOutcome, PayoutProviderClient
from providers.registry import build_client, connector_class, payout_class
from providers.signing import KAZBANK_SIGNATURE_HEADER

SETTINGS = Settings()  # what the simulator process reads from the same environment
VISA_OK = "4242424242424242"
CARD = CardData(number=VISA_OK, exp_month=1, exp_year=2030, cvc="123", holder="A PAYER")
OPEN_IBAN = "KZ86125KZT5004100100"
CLOSED_IBAN = "KZ86125999004100100"  # the simulated bank's closed account
UNUSED = "http://127.0.0.1:9/unused"  # a callback URL nobody listens on

CARDS = ("halyk", "freedom", "cloudpayments")
# Asynchronous providers: their method and the payer's details.
PAYMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "kazbank": ("bank_transfer", {}),
    "kaspi_qr": ("qr", {}),
    "kaspi_pay": ("mobile_banking", {"phone": "+77011234567"}),
    "ioka": ("aggregator", {}),
    "freedom_wallet": ("ewallet", {"account": "+77011234567"}),
}


def _ref(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _key(header: str, name: str) -> dict[str, str]:
    return {header: SETTINGS.provider_secret(name)}


async def _failure(call: Awaitable[object]) -> ProviderError:
    """The error the connector call raises (it must raise one)."""
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


async def _retry_after(call: Awaitable[object]) -> float | None:
    """The Retry-After of the 429 the call is answered: throttled, refused before processing."""
    failure = await _failure(call)
    assert isinstance(failure, ProviderThrottled), failure
    assert outcome_known(failure)
    return failure.retry_after


class Providers:
    """The platform's connector clients for the simulated providers, one per provider and kind
    (a connector's state, such as Halyk's access token, lives as long as the test), and a saved
    card at each acquirer."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._cards: dict[str, CardProviderClient] = {}
        self._payments: dict[str, PaymentProviderClient] = {}
        self._payouts: dict[str, PayoutProviderClient] = {}
        self._tokens: dict[str, str] = {}

    def card(self, name: str) -> CardProviderClient:
        if name not in self._cards:
            kind = connector_class(self.settings, name)
            assert issubclass(kind, CardProviderClient), kind
            self._cards[name] = build_client(self.settings, self.http, name, kind)
        return self._cards[name]

    def payments(self, name: str) -> PaymentProviderClient:
        if name not in self._payments:
            kind = connector_class(self.settings, name)
            assert issubclass(kind, PaymentProviderClient), kind
            self._payments[name] = build_client(self.settings, self.http, name, kind)
        return self._payments[name]

    def payouts(self, name: str) -> PayoutProviderClient:
        if name not in self._payouts:
            kind = payout_class(self.settings, name)
            self._payouts[name] = build_client(self.settings, self.http, name, kind)
        return self._payouts[name]

    async def token(self, name: str) -> str:
        """A card saved at this acquirer (the payer's card, or a payout's destination)."""
        if name not in self._tokens:
            self._tokens[name] = (await self.card(name).tokenize(CARD)).token
        return self._tokens[name]

    async def open(
        self,
        name: str,
        reference: str,
        *,
        amount: int = 250_000,
        callback_url: str = UNUSED,
        expires: int = 900,
    ) -> str:
        """A payment under `reference` as the platform opens it: a saved card charged, or an
        order created; its status in our words."""
        if name in CARDS:
            token = await self.token(name)
            charged = await self.card(name).charge(
                reference=reference, token=token, amount=amount, currency="KZT"
            )
            return charged.status
        created = await self.create(
            name, reference, amount=amount, callback_url=callback_url, expires=expires
        )
        return created.status

    async def create(
        self,
        name: str,
        reference: str,
        *,
        amount: int = 250_000,
        callback_url: str = UNUSED,
        expires: int = 900,
    ) -> PaymentOutcome:
        method, details = PAYMENTS[name]
        return await self.payments(name).create_payment(
            reference=reference,
            method=method,
            amount=amount,
            currency="KZT",
            details=details,
            callback_url=callback_url,
            expires_in_seconds=expires,
        )

    async def pay(
        self, name: str, reference: str, *, amount: int = 100_000, iban: str = OPEN_IBAN
    ) -> PayoutOutcome:
        """A payout: KazBank's to an IBAN, an acquirer's to the card saved there."""
        destination: dict[str, Any]
        if name == "kazbank":
            method, destination = "bank_transfer", {"iban": iban}
        else:
            method, destination = "card", {"card": {"token": await self.token(name)}}
        return await self.payouts(name).pay(
            reference=reference,
            amount=amount,
            currency="KZT",
            method=method,
            destination=destination,
        )


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """A merchant webhook endpoint: records every request and answers 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the connection
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                headers = {
                    name.strip().lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                async with self._arrived:
                    self.deliveries.append(Delivery(path, headers, body))
                    self._arrived.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait(self, path: str, count: int, timeout: float = 15) -> list[Delivery]:
        """The deliveries to `path` once there are at least `count` of them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.at(path)) >= count)
        return self.at(path)


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator; every provider's and payout desk's behaviour is reset afterwards, and a
    webhook the test registered at ioka is removed."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=15) as client:
        yield client
        await client.post("/admin/reset")
        hooks = await client.get("/providers/ioka/v2/webhooks", headers=_key("API-KEY", "ioka"))
        for hook in hooks.json():
            await client.delete(
                f"/providers/ioka/v2/webhooks/{hook['id']}", headers=_key("API-KEY", "ioka")
            )


@pytest.fixture
async def providers(simulator_url: str) -> AsyncIterator[Providers]:
    settings = SETTINGS.model_copy(update={"simulator_url": simulator_url})
    async with httpx.AsyncClient(timeout=10) as http:
        yield Providers(settings, http)


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    found = CallbackReceiver()
    await found.start()
    yield found
    await found.stop()


async def _behave(sim: httpx.AsyncClient, provider: str, **knobs: Any) -> None:
    response = await sim.put(f"/admin/providers/{provider}/behaviour", json=knobs)
    assert response.status_code == 200, response.text


async def _desk(sim: httpx.AsyncClient, provider: str, **knobs: Any) -> None:
    response = await sim.put(f"/admin/payouts/{provider}/behaviour", json=knobs)
    assert response.status_code == 200, response.text


async def _held(sim: httpx.AsyncClient, reference: str) -> list[dict[str, Any]]:
    response = await sim.get("/admin/charges", params={"reference": reference})
    assert response.status_code == 200, response.text
    held: list[dict[str, Any]] = response.json()
    return held


async def _ioka_webhook(sim: httpx.AsyncClient, url: str) -> None:
    """ioka's webhook, one per shop, for the orders created from now on."""
    response = await sim.post(
        "/providers/ioka/v2/webhooks",
        json={"url": url, "events": ["PAYMENT_CAPTURED", "PAYMENT_CANCELLED"]},
        headers=_key("API-KEY", "ioka"),
    )
    assert response.status_code == 201, response.text


def _ioka_reads(delivery: Delivery) -> tuple[str, str]:
    """The webhook verified with ioka's key and read as the platform reads it."""
    IokaClient.verify_callback(
        SETTINGS.webhook_secret("ioka"),
        {
            "X-Signature": delivery.headers["x-signature"],
            "X-Timestamp": delivery.headers["x-timestamp"],
        },
        delivery.body,
        now=time.time(),
        tolerance_seconds=300,
    )
    callback = IokaClient.parse_callback(delivery.body)
    return callback.reference, callback.status


def _wallet_reads(delivery: Delivery) -> tuple[str, str]:
    """Freedom Pay's result callback, verified as signed for the script of its result URL (the
    last part of its path) with the wallet's secret key, and read as the platform reads it."""
    FreedomPayWalletClient.verify_callback(
        SETTINGS.webhook_secret("freedom_wallet"),
        delivery.headers,
        delivery.body,
        now=time.time(),
        tolerance_seconds=300,
        script=delivery.path.rsplit("/", 1)[-1],
    )
    callback = FreedomPayWalletClient.parse_callback(delivery.body)
    return callback.reference, callback.status


async def _logged(sim: httpx.AsyncClient, reference: str, count: int) -> list[dict[str, Any]]:
    """The simulator's log of the deliveries under `reference`, once it holds `count`: it logs
    a delivery after it has read our answer, which may come after the receiver saw it."""
    deadline = time.monotonic() + 10
    logged: list[dict[str, Any]] = []
    while len(logged) < count:
        assert time.monotonic() < deadline, logged
        await asyncio.sleep(0.02)  # no event tells when the simulator has read the answer
        logged = (await sim.get("/admin/callbacks", params={"reference": reference})).json()
    return logged


# -- the behaviour model ------------------------------------------------------------------------


async def test_unknown_knobs_are_refused_and_the_knobs_are_shown_and_documented(
    sim: httpx.AsyncClient,
) -> None:
    for path in ("/admin/providers/halyk/behaviour", "/admin/payouts/freedom/behaviour"):
        typo = await sim.put(path, json={"fail_nxt": 2})
        assert typo.status_code == 422, typo.text
        assert typo.json()["detail"][0]["type"] == "extra_forbidden"
    bad_status = await sim.put(
        "/admin/providers/halyk/behaviour", json={"error_after_processing_status": 503}
    )
    assert bad_status.status_code == 422

    shown = (await sim.get("/admin/providers/halyk/behaviour")).json()
    assert shown["fail_next"] == 0  # nothing was changed by the refused PUTs
    assert {
        "error_after_processing_next": 0,
        "error_after_processing_status": 502,
        "reset_after_processing_next": 0,
        "unknown_cancel": "not_found",
        "throttle_next": 0,
        "throttle_retry_after_seconds": 1,
        "expire_credentials_next": 0,
        "token_expiry_seconds": None,
        "callback_same_event_repeat": 0,
        "late_success_after_expiry": False,
        "late_success_delay_ms": 0,
        "payout_processing_seconds": 0.0,
    }.items() <= shown.items()
    # Payout desks keep today's tombstones unless told otherwise.
    for desk in ("freedom", "kazbank", "cloudpayments"):
        shown = (await sim.get(f"/admin/payouts/{desk}/behaviour")).json()
        assert shown["unknown_cancel"] == "tombstone", desk

    await _behave(sim, "halyk", throttle_next=2, unknown_cancel="tombstone")
    shown = (await sim.get("/admin/providers/halyk/behaviour")).json()
    assert (shown["throttle_next"], shown["unknown_cancel"]) == (2, "tombstone")

    schema = (await sim.get("/openapi.json")).json()["components"]["schemas"]["Behaviour"]
    assert schema["additionalProperties"] is False
    for knob in ("error_after_processing_next", "reset_after_processing_next", "unknown_cancel"):
        assert "description" in schema["properties"][knob], knob


# -- a 5xx before anything is processed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "known"),
    [
        ("halyk", True),  # 503 with Halyk's 1011: down, nothing processed
        ("freedom", False),  # 503 with error 1000: Freedom Pay documents no "down" answer
        ("cloudpayments", False),  # CloudPayments documents none either: every 5xx is unknown
        ("kazbank", True),  # 503 SERVICE_UNAVAILABLE
        ("kaspi_qr", True),  # StatusCode -999 inside an HTTP 200
        ("ioka", True),  # 503 ServiceUnavailable
        ("freedom_wallet", False),  # Freedom Pay's 503 with error 1000, as for its cards
    ],
)
async def test_a_5xx_before_processing_moves_nothing(
    sim: httpx.AsyncClient, providers: Providers, provider: str, known: bool
) -> None:
    """`fail_next`: the provider answers its own "unavailable" before processing; the connector
    reads it as that provider documents it, and nothing is held until the next call."""
    reference = _ref("dep_503")
    if provider in CARDS:
        await providers.token(provider)
    await _behave(sim, provider, fail_next=1)
    failure = await _failure(providers.open(provider, reference))
    assert outcome_known(failure) is known, failure
    if known:
        assert type(failure) is ProviderUnreachable
    else:
        assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "http_503")
    assert await _held(sim, reference) == []

    assert await providers.open(provider, reference) in ("succeeded", "pending")
    assert [h["provider"] for h in await _held(sim, reference)] == [provider]


# -- processed, then a 5xx or no answer ---------------------------------------------------------


async def test_error_after_processing_charges_the_card_and_answers_502(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    halyk = providers.card("halyk")
    token = await providers.token("halyk")
    reference = _ref("dep_err")
    await _behave(sim, "halyk", error_after_processing_next=1)

    failure = await _failure(
        halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT")
    )
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "http_502")
    (held,) = await _held(sim, reference)
    assert (held["provider"], held["kind"], held["status"], held["money_moved"]) == (
        "halyk",
        "charge",
        "succeeded",
        True,
    )

    found = await halyk.get_charge(reference)  # the counter is spent: the truth by inquiry
    assert found is not None
    assert found.status == "succeeded"
    again = await halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT")
    assert (again.status, again.charge_id) == ("succeeded", found.charge_id)  # idempotent
    assert len(await _held(sim, reference)) == 1
    log = (await sim.get(f"/admin/providers/halyk/charges/{reference}")).json()
    assert (log["calls"], log["charge"]["charge_id"]) == (2, held["provider_id"])


@pytest.mark.parametrize(
    ("provider", "status", "kind", "held_status"),
    [
        ("halyk", 500, "charge", "succeeded"),
        ("freedom", 504, "charge", "succeeded"),
        ("cloudpayments", 500, "charge", "succeeded"),
        ("kazbank", 500, "payment", "pending"),
        ("kaspi_qr", 504, "payment", "pending"),
        ("kaspi_pay", 502, "payment", "pending"),
        ("ioka", 502, "payment", "pending"),
        ("freedom_wallet", 500, "payment", "pending"),
    ],
)
async def test_error_after_processing_status_is_configurable_for_every_provider(
    sim: httpx.AsyncClient,
    providers: Providers,
    provider: str,
    status: int,
    kind: str,
    held_status: str,
) -> None:
    reference = _ref(f"dep_err{status}")
    if provider in CARDS:
        await providers.token(provider)
    await _behave(
        sim, provider, error_after_processing_next=1, error_after_processing_status=status
    )
    failure = await _failure(providers.open(provider, reference))
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, f"http_{status}")
    assert [(h["provider"], h["kind"], h["status"]) for h in await _held(sim, reference)] == [
        (provider, kind, held_status)
    ]


async def test_reset_after_processing_charges_then_drops_the_connection_without_an_answer(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    halyk = providers.card("halyk")
    token = await providers.token("halyk")
    reference = _ref("dep_reset")
    await _behave(sim, "halyk", reset_after_processing_next=1)

    dropped = await _failure(
        halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT")
    )
    assert (type(dropped), dropped.code) == (ProviderOutcomeUnknown, "connection_lost")
    assert dropped.detail in ("RemoteProtocolError", "ReadError")  # never a connect error
    (held,) = await _held(sim, reference)
    assert (held["status"], held["money_moved"]) == ("succeeded", True)

    after = await halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT")
    assert after.status == "succeeded"  # one drop only; the charge is there, once
    assert len(await _held(sim, reference)) == 1


@pytest.mark.parametrize("desk", ["kazbank", "freedom", "cloudpayments"])
async def test_reset_after_processing_pays_the_payout_then_drops_the_connection(
    sim: httpx.AsyncClient, providers: Providers, desk: str
) -> None:
    """KazBank pays to an IBAN, Freedom Pay (reg2reg) and CloudPayments (topup) to a saved card."""
    reference = _ref("wd_reset")
    if desk != "kazbank":
        await providers.token(desk)
    await _desk(sim, desk, reset_after_processing_next=1)
    dropped = await _failure(providers.pay(desk, reference))
    assert (type(dropped), dropped.code) == (ProviderOutcomeUnknown, "connection_lost")
    assert [(h["provider"], h["kind"], h["status"]) for h in await _held(sim, reference)] == [
        (desk, "payout", "paid")
    ]
    found = await providers.payouts(desk).get_payout(reference)
    assert found is not None
    assert found.status == "paid"


@pytest.mark.parametrize("provider", ["kaspi_qr", "kaspi_pay", "ioka", "kazbank", "freedom_wallet"])
async def test_reset_after_processing_opens_the_payment(
    sim: httpx.AsyncClient, providers: Providers, provider: str
) -> None:
    reference = _ref("dep_pay_reset")
    await _behave(sim, provider, reset_after_processing_next=1)
    dropped = await _failure(providers.open(provider, reference))
    assert (type(dropped), dropped.code) == (ProviderOutcomeUnknown, "connection_lost")
    assert [(h["provider"], h["status"]) for h in await _held(sim, reference)] == [
        (provider, "pending")
    ]
    found = await providers.payments(provider).get_payment(reference)
    assert found is not None
    assert found.status == "pending"


# -- a request stuck in the network, and cancels of what a provider never saw ------------------


async def test_a_late_request_is_not_seen_by_inquiry_nor_cancel_and_still_charges(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    """`late_next`: the charge is stuck in the network for 2 s and the caller gives up after
    0.3 s; Halyk has nothing under the invoice meanwhile (its inquiry says so, so there is
    nothing to cancel), and the request charges the card when it lands."""
    halyk = providers.card("halyk")
    token = await providers.token("halyk")
    reference = _ref("dep_late")
    await _behave(sim, "halyk", late_next=1, timeout_seconds=2)
    async with httpx.AsyncClient(timeout=0.3) as impatient:
        hurried = Providers(providers.settings, impatient).card("halyk")
        stuck = await _failure(
            hurried.charge(reference=reference, token=token, amount=250_000, currency="KZT")
        )
    assert type(stuck) is ProviderTimeout
    assert (await sim.get(f"/admin/providers/halyk/charges/{reference}")).json()["charge"] is None
    assert await halyk.get_charge(reference) is None
    assert await halyk.cancel_charge(reference) is None  # never seen: nothing to cancel
    assert await _held(sim, reference) == []  # nothing recorded

    landed = await sim.get(f"/admin/providers/halyk/payments/{reference}", params={"wait": 10})
    assert landed.json()["charge"]["status"] == "succeeded"  # the card is charged after all
    assert [h["status"] for h in await _held(sim, reference)] == ["succeeded"]
    found = await halyk.get_charge(reference)
    assert found is not None
    assert found.status == "succeeded"


@pytest.mark.parametrize("provider", CARDS)
async def test_a_cancel_of_a_charge_an_acquirer_never_saw_finds_nothing(
    sim: httpx.AsyncClient, providers: Providers, provider: str
) -> None:
    """The acquirers cancel by their own payment id, found by an inquiry first: a reference they
    never saw is nothing to cancel, and nothing is recorded for it."""
    reference = _ref("dep_void")
    assert await providers.card(provider).cancel_charge(reference) is None
    assert await _held(sim, reference) == []
    assert await providers.open(provider, reference) == "succeeded"  # the reference is free


async def test_freedom_cancel_of_an_unknown_payment_is_its_error_340(
    sim: httpx.AsyncClient,
) -> None:
    """Raw, in Freedom Pay's signed forms: cancel.php of a payment id it never gave."""
    secret = SETTINGS.provider_secret("freedom")
    fields = {
        "pg_merchant_id": merchant_id(SETTINGS.connector("freedom")),
        "pg_payment_id": "123456789",
        "pg_order_id": _ref("dep_void"),
    }
    answered = await sim.post(
        "/providers/freedom/cancel.php", data=signed_form("cancel.php", fields, secret, new_salt())
    )
    assert answered.status_code == 200
    answer = read_answer(answered.content)
    assert (answer.fields["pg_status"], answer.fields["pg_error_code"]) == ("error", "340")
    assert answer.signed_by("cancel.php", secret)


async def test_cancel_of_an_unknown_order_is_404_and_a_late_create_still_opens_it(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    """KazBank closes instructions by our reference (DELETE by-order): one it never saw is 404
    ORDER_NOT_FOUND (`unknown_cancel: not_found`) and nothing is recorded, so a create still in
    flight under that reference opens the instruction when it lands."""
    reference = _ref("dep_unknown_cancel")
    assert await providers.payments("kazbank").cancel_payment(reference) is None
    raw = await sim.delete(
        f"/providers/kazbank/v2/transfer-instructions/by-order/{reference}",
        headers=_key("X-Api-Key", "kazbank"),
    )
    assert (raw.status_code, raw.json()["errorCode"]) == (404, "ORDER_NOT_FOUND")
    assert await _held(sim, reference) == []
    assert await providers.open("kazbank", reference) == "pending"


async def test_tombstone_keeps_refusing_a_late_request(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    kazbank = providers.payments("kazbank")
    reference = _ref("dep_tomb")
    await _behave(sim, "kazbank", unknown_cancel="tombstone")
    closed = await kazbank.cancel_payment(reference)
    assert closed is not None
    assert closed.status == "cancelled"

    late = await providers.create("kazbank", reference)
    assert late.status == "cancelled"  # the late create gets the tombstone back, never opened
    (held,) = await _held(sim, reference)
    assert (held["status"], held["tombstone"], held["money_moved"]) == ("cancelled", True, False)

    # KazBank's payout desk keeps tombstones by default: a late payout is never paid.
    payout_ref = _ref("wd_tomb")
    voided = await providers.payouts("kazbank").cancel_payout(
        reference=payout_ref, amount=100_000, currency="KZT"
    )
    assert (voided.status, voided.failure_code) == ("failed", "cancelled")
    paid_late = await providers.pay("kazbank", payout_ref)
    assert (paid_late.status, paid_late.failure_code) == ("failed", "cancelled")
    (held,) = await _held(sim, payout_ref)
    assert (held["kind"], held["money_moved"], held["tombstone"]) == ("payout", False, True)


# -- throttling and credentials -----------------------------------------------------------------


async def test_throttled_calls_answer_429_with_retry_after_on_every_endpoint(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    halyk = providers.card("halyk")
    token = await providers.token("halyk")
    reference = _ref("dep_429")
    await _behave(sim, "halyk", throttle_next=3, throttle_retry_after_seconds=7)
    calls: list[Awaitable[object]] = [
        halyk.get_charge(reference),
        halyk.cancel_charge(reference),
        halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT"),
    ]
    for call in calls:
        assert await _retry_after(call) == 7
    assert await _held(sim, reference) == []  # throttled before anything was processed
    charged = await halyk.charge(reference=reference, token=token, amount=250_000, currency="KZT")
    assert charged.status == "succeeded"

    for provider in ("kaspi_qr", "ioka", "kazbank", "freedom_wallet"):
        await _behave(sim, provider, throttle_next=1)
        assert await _retry_after(providers.payments(provider).get_payment(reference)) == 1
        assert await providers.payments(provider).get_payment(reference) is None

    for desk in ("freedom", "kazbank"):
        await _desk(sim, desk, throttle_next=1)
        assert await _retry_after(providers.payouts(desk).get_payout(reference)) == 1
        assert await providers.payouts(desk).get_payout(reference) is None


async def test_expired_credentials_answer_401_token_expired(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    reference = _ref("dep_401")
    kaspi = providers.payments("kaspi_pay")
    await _behave(sim, "kaspi_pay", expire_credentials_next=1)
    first = await _failure(kaspi.get_payment(reference))
    assert (type(first), first.code) == (ProviderRejected, "http_401")
    assert await kaspi.get_payment(reference) is None  # the key works again

    # Halyk's OAuth tokens: a 401 takes a new token and sends the call once more.
    issued: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("/oauth2/token"):
            issued.append(request)

    async with httpx.AsyncClient(timeout=10, event_hooks={"request": [count]}) as http:
        halyk = Providers(providers.settings, http).card("halyk")
        assert await halyk.get_charge(reference) is None
        assert len(issued) == 1
        await _behave(sim, "halyk", expire_credentials_next=1)
        assert await halyk.get_charge(reference) is None  # refreshed, transparently
        assert len(issued) == 2

        await _behave(sim, "halyk", token_expiry_seconds=0)  # expired as soon as it is set
        for attempt in range(2):
            expired = await _failure(halyk.get_charge(reference))
            assert (type(expired), expired.code) == (ProviderRejected, "token_expired")
            assert len(issued) == 3 + attempt  # one new token per call, refused as well
        await _behave(sim, "halyk", token_expiry_seconds=3600)
        assert await halyk.get_charge(reference) is None


# -- callbacks ----------------------------------------------------------------------------------


async def test_the_same_event_is_delivered_again_byte_for_byte(
    sim: httpx.AsyncClient, providers: Providers, receiver: CallbackReceiver
) -> None:
    reference = _ref("dep_repeat")
    path = f"/hooks/ioka/{reference}"
    await _ioka_webhook(sim, f"{receiver.url}{path}")
    await _behave(sim, "ioka", callback_same_event_repeat=2)
    assert await providers.open("ioka", reference) == "pending"
    assert (await sim.post(f"/pay/ioka/{reference}/confirm")).status_code == 200

    first, *again = await receiver.wait(path, 3)
    assert len(again) == 2
    assert all(d.body == first.body for d in again)
    signatures = {(d.headers["x-signature"], d.headers["x-timestamp"]) for d in [first, *again]}
    assert len(signatures) == 1
    logged = await _logged(sim, reference, 3)
    assert len(logged) == 3
    assert len({c["event_id"] for c in logged}) == 1
    assert _ioka_reads(first) == (reference, "succeeded")


async def test_duplicated_and_out_of_order_callbacks(
    sim: httpx.AsyncClient, providers: Providers, receiver: CallbackReceiver
) -> None:
    """`callback_duplicate` sends the event again as a new event (another id);
    `callback_out_of_order` follows the final one with a stale one."""
    reference = _ref("dep_dup")
    path = f"/hooks/ioka/{reference}"
    await _ioka_webhook(sim, f"{receiver.url}{path}")
    await _behave(sim, "ioka", callback_duplicate=True, callback_out_of_order=True)
    await providers.open("ioka", reference)
    assert (await sim.post(f"/pay/ioka/{reference}/confirm")).status_code == 200

    deliveries = await receiver.wait(path, 3)
    assert [_ioka_reads(d) for d in deliveries] == [
        (reference, "succeeded"),
        (reference, "succeeded"),
        (reference, "pending"),  # stale: the order as it was before it was paid
    ]
    logged = await _logged(sim, reference, 3)
    assert [c["status"] for c in logged] == ["succeeded", "succeeded", "processing"]
    assert len({c["event_id"] for c in logged}) == 3
    found = await providers.payments("ioka").get_payment(reference)
    assert found is not None
    assert found.status == "succeeded"


async def test_lost_and_delayed_callbacks(
    sim: httpx.AsyncClient, providers: Providers, receiver: CallbackReceiver
) -> None:
    lost_ref, late_ref = _ref("dep_lost"), _ref("dep_delayed")
    for reference in (lost_ref, late_ref):
        await providers.open(
            "kazbank", reference, callback_url=f"{receiver.url}/hooks/kazbank/{reference}"
        )
    await _behave(sim, "kazbank", callback_lost=True)
    assert (await sim.post(f"/pay/kazbank/{lost_ref}/transfer")).status_code == 200

    await _behave(sim, "kazbank", callback_delay_ms=500)
    paid_at = time.monotonic()
    assert (await sim.post(f"/pay/kazbank/{late_ref}/transfer")).status_code == 200
    (delayed,) = await receiver.wait(f"/hooks/kazbank/{late_ref}", 1)
    assert time.monotonic() - paid_at >= 0.5
    assert '"state": "PAID"' in delayed.body.decode()
    # The lost one was never scheduled (the delayed one, paid after it, has arrived).
    assert receiver.at(f"/hooks/kazbank/{lost_ref}") == []
    assert (await sim.get("/admin/callbacks", params={"reference": lost_ref})).json() == []
    found = await providers.payments("kazbank").get_payment(lost_ref)
    assert found is not None
    assert found.status == "succeeded"


# -- paid after expiry or cancel ----------------------------------------------------------------


async def test_a_cancelled_kaspi_qr_is_reported_paid_afterwards(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    """Kaspi sends no callbacks: the late payment is what its status inquiry reports."""
    kaspi = providers.payments("kaspi_qr")
    reference = _ref("dep_qr_late")
    await _behave(sim, "kaspi_qr", late_success_after_expiry=True)
    assert await providers.open("kaspi_qr", reference) == "pending"

    closed = await kaspi.cancel_payment(reference)
    assert closed is not None
    assert closed.status == "cancelled"
    shown = await kaspi.get_payment(reference)
    assert shown is not None
    assert (shown.status, shown.amount_received) == ("succeeded", 250_000)
    assert [(h["status"], h["money_moved"]) for h in await _held(sim, reference)] == [
        ("succeeded", True)
    ]


@pytest.mark.parametrize("provider", ["ioka", "freedom_wallet"])
async def test_an_expired_order_is_reported_paid_afterwards_with_a_callback(
    sim: httpx.AsyncClient, providers: Providers, receiver: CallbackReceiver, provider: str
) -> None:
    """ioka's webhook (registered per shop) and Freedom Pay's result callback (to the order's
    pg_result_url) report the payment made after the order expired, a second later."""
    client = providers.payments(provider)
    reference = _ref("dep_late_paid")
    path = f"/hooks/{provider}/{reference}"
    if provider == "ioka":
        await _ioka_webhook(sim, f"{receiver.url}{path}")
    await _behave(sim, provider, late_success_after_expiry=True, late_success_delay_ms=1000)
    opened = await providers.open(provider, reference, callback_url=f"{receiver.url}{path}")
    assert opened == "pending"

    expired = await sim.post(f"/admin/providers/{provider}/payments/{reference}/expire")
    assert expired.json()["status"] == "expired"
    shown = await client.get_payment(reference)
    assert shown is not None
    assert shown.status == "expired"
    (callback,) = await receiver.wait(path, 1)
    reads = _ioka_reads if provider == "ioka" else _wallet_reads
    assert reads(callback) == (reference, "succeeded")
    shown = await client.get_payment(reference)
    assert shown is not None
    assert (shown.status, shown.amount_received) == ("succeeded", 250_000)


async def test_the_provider_notices_the_expiry_itself_and_reports_the_payment(
    sim: httpx.AsyncClient, providers: Providers, receiver: CallbackReceiver
) -> None:
    """Nobody asks: the order's 2 s run out, and the payment is reported paid all the same."""
    reference = _ref("dep_ioka_ttl")
    path = f"/hooks/ioka/{reference}"
    await _ioka_webhook(sim, f"{receiver.url}{path}")
    await _behave(sim, "ioka", late_success_after_expiry=True)
    assert await providers.open("ioka", reference, expires=2) == "pending"
    (callback,) = await receiver.wait(path, 1)
    assert _ioka_reads(callback) == (reference, "succeeded")


# -- payouts that take time ---------------------------------------------------------------------


async def test_payouts_stay_processing_then_become_paid_or_failed(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    kazbank = providers.payouts("kazbank")
    await _desk(sim, "kazbank", payout_processing_seconds=0.5)
    paid_ref, closed_ref = _ref("wd_slow"), _ref("wd_slow_closed")
    created = await providers.pay("kazbank", paid_ref)
    assert created.status == "processing"
    closed = await providers.pay("kazbank", closed_ref, iban=CLOSED_IBAN)
    assert (closed.status, closed.failure_code) == ("processing", None)
    shown = await kazbank.get_payout(paid_ref)
    assert shown is not None
    assert shown.status == "processing"

    deadline = time.monotonic() + 10
    while shown is not None and shown.status == "processing":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # a bank's clock: no event tells when it settles
        shown = await kazbank.get_payout(paid_ref)
    assert shown is not None
    assert shown.status == "paid"
    replay = await providers.pay("kazbank", paid_ref)
    assert (replay.status, replay.payout_id) == ("paid", shown.payout_id)
    failed = await kazbank.get_payout(closed_ref)
    assert failed is not None
    assert (failed.status, failed.failure_code) == ("failed", "account_closed")


async def test_freedom_payouts_stay_processing_then_become_paid(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    """Freedom Pay reports a payout still `pending`: the connector leaves its outcome unknown
    (ask again later) until it is final."""
    freedom = providers.payouts("freedom")
    await providers.token("freedom")
    await _desk(sim, "freedom", payout_processing_seconds=0.5)
    reference = _ref("wd_slow_card")
    processing = await _failure(providers.pay("freedom", reference))
    assert (type(processing), processing.code) == (ProviderOutcomeUnknown, "processing")
    assert [h["status"] for h in await _held(sim, reference)] == ["processing"]

    deadline = time.monotonic() + 10
    while True:
        try:
            found = await freedom.get_payout(reference)
        except ProviderOutcomeUnknown as exc:
            still = exc
        else:
            break
        assert still.code == "processing"  # asked while processing: unknown yet
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # a bank's clock: no event tells when it settles
    assert found is not None
    assert found.status == "paid"


# -- bank transfers as statement lines ----------------------------------------------------------


async def _instruction(sim: httpx.AsyncClient, reference: str, callback_url: str) -> None:
    created = await sim.post(
        "/providers/kazbank/v2/transfer-instructions",
        json={
            "orderId": reference,
            "sum": "5000.00",
            "currency": "KZT",
            "callbackUrl": callback_url,
        },
        headers=_key("X-Api-Key", "kazbank"),
    )
    assert created.status_code == 201, created.text


async def _line(sim: httpx.AsyncClient, amount: int, purpose: str) -> dict[str, Any]:
    response = await sim.post(
        "/admin/providers/kazbank/statement-lines",
        json={"amount": amount, "purpose": purpose, "payer_name": "A. Payer"},
    )
    assert response.status_code == 201, response.text
    line: dict[str, Any] = response.json()
    return line


async def _instruction_state(sim: httpx.AsyncClient, reference: str) -> dict[str, Any]:
    shown: dict[str, Any] = (
        await sim.get(
            f"/providers/kazbank/v2/transfer-instructions/by-order/{reference}",
            headers=_key("X-Api-Key", "kazbank"),
        )
    ).json()
    return shown


async def test_short_and_over_transfers_with_free_text_purposes_are_reported(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    short_ref, over_ref = _ref("dep_short"), _ref("dep_over")
    for reference in (short_ref, over_ref):
        await _instruction(sim, reference, f"{receiver.url}/hooks/kazbank/{reference}")

    short = await _line(sim, 4_000_00, f"Payment for deposit {short_ref.upper()}, thanks!")
    assert (short["matched_reference"], short["amount_check"], short["late"]) == (
        short_ref,
        "short",
        False,
    )
    (callback,) = await receiver.wait(f"/hooks/kazbank/{short_ref}", 1)
    assert KAZBANK_SIGNATURE_HEADER.lower() in callback.headers
    assert '"paidSum": "4000.00"' in callback.body.decode()
    shown = await _instruction_state(sim, short_ref)
    assert (shown["state"], shown["sum"], shown["paidSum"]) == ("PAID", "5000.00", "4000.00")

    over = await _line(sim, 6_000_00, f"ref:{over_ref} deposit")
    assert (over["matched_reference"], over["amount_check"]) == (over_ref, "over")
    (callback,) = await receiver.wait(f"/hooks/kazbank/{over_ref}", 1)
    assert '"paidSum": "6000.00"' in callback.body.decode()

    # The payer tops up the short one: a second line adds to what the order received.
    top_up = await _line(sim, 1_000_00, f"{short_ref} remainder")
    assert (top_up["repeat"], top_up["received_total"], top_up["amount_check"]) == (
        True,
        5_000_00,
        "exact",
    )
    await receiver.wait(f"/hooks/kazbank/{short_ref}", 2)


async def test_a_late_transfer_after_expiry_is_reported_and_an_unmatched_one_is_kept(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    reference = _ref("dep_bank_late")
    path = f"/hooks/kazbank/{reference}"
    await _instruction(sim, reference, f"{receiver.url}{path}")
    await sim.post(f"/admin/providers/kazbank/payments/{reference}/expire")
    assert (await _instruction_state(sim, reference))["state"] == "EXPIRED"

    late = await _line(sim, 5_000_00, f"DEPOSIT {reference.upper()}")
    assert (late["matched_reference"], late["late"], late["amount_check"]) == (
        reference,
        True,
        "exact",
    )
    (callback,) = await receiver.wait(path, 1)
    assert '"state": "PAID"' in callback.body.decode()
    assert (await _instruction_state(sim, reference))["state"] == "PAID"

    stray = await _line(sim, 1_234_00, "for my account, no reference")
    assert stray["matched_reference"] is None
    lines = (await sim.get("/admin/providers/kazbank/statement-lines")).json()
    assert stray["line_id"] in {line["line_id"] for line in lines}
    # a reference that merely starts like another one is not it
    prefix = await _line(sim, 100, f"{reference}x")
    assert prefix["matched_reference"] is None


# -- what every provider holds under one reference ---------------------------------------------


async def test_admin_charges_lists_every_provider_holding_a_reference(
    sim: httpx.AsyncClient, providers: Providers
) -> None:
    reference = _ref("dep_all")
    assert await _held(sim, reference) == []
    for card in CARDS:
        assert await providers.open(card, reference) == "succeeded"
    for provider in ("kazbank", "kaspi_qr", "ioka", "freedom_wallet"):
        assert await providers.open(provider, reference, amount=500_000) == "pending"
    assert (await providers.pay("kazbank", reference)).status == "paid"
    assert (await providers.pay("freedom", reference)).status == "paid"

    held = await _held(sim, reference)
    assert [(h["provider"], h["kind"], h["status"], h["amount"], h["currency"]) for h in held] == [
        ("halyk", "charge", "succeeded", 250_000, "KZT"),
        ("freedom", "charge", "succeeded", 250_000, "KZT"),
        ("cloudpayments", "charge", "succeeded", 250_000, "KZT"),
        ("kazbank", "payment", "pending", 500_000, "KZT"),
        ("kaspi_qr", "payment", "pending", 500_000, "KZT"),
        ("ioka", "payment", "pending", 500_000, "KZT"),
        ("freedom_wallet", "payment", "pending", 500_000, "KZT"),
        ("kazbank", "payout", "paid", 100_000, "KZT"),
        ("freedom", "payout", "paid", 100_000, "KZT"),
    ]
    assert all(h["created_at"] for h in held)
    assert sum(h["money_moved"] for h in held if h["kind"] == "charge") == 3
