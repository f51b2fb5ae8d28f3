"""The simulator misbehaves like real acquirers, wallets and banks: driven over HTTP against the
simulator process (the session's `simulator_url`), each knob shown doing what it says.

Callbacks land on a tiny HTTP receiver on 127.0.0.1 started by the test (`CallbackReceiver`).
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from config import Settings
from providers.signing import BANKAPP_SIGNATURE_HEADER, KAZBANK_SIGNATURE_HEADER

SETTINGS = Settings()  # what the simulator process reads from the same environment
VISA_OK = "4242424242424242"


def _ref(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SETTINGS.provider_secret(name)}"}


def _key(header: str, name: str) -> dict[str, str]:
    return {header: SETTINGS.provider_secret(name)}


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
    """The simulator; every provider's and payout desk's behaviour is reset afterwards."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=15) as client:
        yield client
        await client.post("/admin/reset")


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    found = CallbackReceiver()
    await found.start()
    yield found
    await found.stop()


async def _behave(sim: httpx.AsyncClient, provider: str, **knobs: Any) -> None:
    response = await sim.put(f"/admin/providers/{provider}/behaviour", json=knobs)
    assert response.status_code == 200, response.text


async def _kazcard_token(sim: httpx.AsyncClient) -> str:
    response = await sim.post(
        "/providers/kazcard/tokens",
        json={"number": VISA_OK, "exp_month": 1, "exp_year": 2030, "cvc": "123"},
        headers=_bearer("kazcard"),
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def _altyn_token(sim: httpx.AsyncClient) -> str:
    response = await sim.post(
        "/providers/altyncard/gateway/tokens",
        json={"pan": VISA_OK, "expiry": "01/2030", "securityCode": "123"},
        headers=_key("X-Altyn-Key", "altyncard"),
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["cardToken"]
    return token


async def _charge(
    sim: httpx.AsyncClient, reference: str, token: str, amount: int = 250_000, **kw: Any
) -> httpx.Response:
    body = {"reference": reference, "token": token, "amount": amount, "currency": "KZT"}
    return await sim.post("/providers/kazcard/charges", json=body, headers=_bearer("kazcard"), **kw)


async def _payout(
    sim: httpx.AsyncClient, reference: str, iban: str = "KZ86125KZT5004100100"
) -> Any:
    return await sim.post(
        "/providers/kazcard/payouts",
        json={
            "reference": reference,
            "amount": 100_000,
            "currency": "KZT",
            "method": "bank_transfer",
            "destination": {"iban": iban},
        },
        headers=_bearer("kazcard"),
    )


async def _held(sim: httpx.AsyncClient, reference: str) -> list[dict[str, Any]]:
    response = await sim.get("/admin/charges", params={"reference": reference})
    assert response.status_code == 200, response.text
    held: list[dict[str, Any]] = response.json()
    return held


# -- the behaviour model ------------------------------------------------------------------------


async def test_unknown_knobs_are_refused_and_the_knobs_are_shown_and_documented(
    sim: httpx.AsyncClient,
) -> None:
    for path in ("/admin/providers/kazcard/behaviour", "/admin/payouts/kazcard/behaviour"):
        typo = await sim.put(path, json={"fail_nxt": 2})
        assert typo.status_code == 422, typo.text
        assert typo.json()["detail"][0]["type"] == "extra_forbidden"
    bad_status = await sim.put(
        "/admin/providers/kazcard/behaviour", json={"error_after_processing_status": 503}
    )
    assert bad_status.status_code == 422

    shown = (await sim.get("/admin/providers/kazcard/behaviour")).json()
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
    desk = (await sim.get("/admin/payouts/kazcard/behaviour")).json()
    assert desk["unknown_cancel"] == "tombstone"

    await _behave(sim, "kazcard", throttle_next=2, unknown_cancel="tombstone")
    shown = (await sim.get("/admin/providers/kazcard/behaviour")).json()
    assert (shown["throttle_next"], shown["unknown_cancel"]) == (2, "tombstone")

    schema = (await sim.get("/openapi.json")).json()["components"]["schemas"]["Behaviour"]
    assert schema["additionalProperties"] is False
    for knob in ("error_after_processing_next", "reset_after_processing_next", "unknown_cancel"):
        assert "description" in schema["properties"][knob], knob


# -- processed, then a 5xx or no answer ---------------------------------------------------------


async def test_error_after_processing_charges_the_card_and_answers_502(
    sim: httpx.AsyncClient,
) -> None:
    token = await _kazcard_token(sim)
    reference = _ref("dep_err")
    await _behave(sim, "kazcard", error_after_processing_next=1)

    answered = await _charge(sim, reference, token)
    assert answered.status_code == 502
    assert answered.json()["code"] == "bad_gateway"
    (held,) = await _held(sim, reference)
    assert (held["provider"], held["kind"], held["status"], held["money_moved"]) == (
        "kazcard",
        "charge",
        "succeeded",
        True,
    )

    again = await _charge(sim, reference, token)  # the counter is spent: the truth, idempotently
    assert again.status_code == 200
    assert again.json()["charge_id"] == held["provider_id"]
    assert len(await _held(sim, reference)) == 1


async def test_error_after_processing_status_is_configurable_in_every_dialect(
    sim: httpx.AsyncClient,
) -> None:
    token = await _altyn_token(sim)
    card_ref = _ref("dep_err504")
    await _behave(
        sim, "altyncard", error_after_processing_next=1, error_after_processing_status=504
    )
    answered = await sim.post(
        "/providers/altyncard/gateway/payments",
        json={
            "merchantReference": card_ref,
            "cardToken": token,
            "amount": {"minor": 250_000, "currency": "KZT"},
        },
        headers=_key("X-Altyn-Key", "altyncard"),
    )
    assert (answered.status_code, answered.json()["fault"]["code"]) == (504, "GATEWAY_TIMEOUT")
    assert [h["status"] for h in await _held(sim, card_ref)] == ["succeeded"]

    order_ref = _ref("dep_err500")
    await _behave(sim, "kazbank", error_after_processing_next=1, error_after_processing_status=500)
    created = await sim.post(
        "/providers/kazbank/v2/transfer-instructions",
        json={"orderId": order_ref, "sum": "2500.00", "currency": "KZT"},
        headers=_key("X-Api-Key", "kazbank"),
    )
    assert (created.status_code, created.json()["errorCode"]) == (500, "INTERNAL_ERROR")
    assert [(h["kind"], h["status"]) for h in await _held(sim, order_ref)] == [
        ("payment", "pending")
    ]


async def test_reset_after_processing_charges_then_drops_the_connection_without_an_answer(
    sim: httpx.AsyncClient, simulator_url: str
) -> None:
    token = await _kazcard_token(sim)
    reference = _ref("dep_reset")
    await _behave(sim, "kazcard", reset_after_processing_next=1)

    async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as dropped:
            await _charge(client, reference, token)
    assert not isinstance(dropped.value, httpx.ConnectError)
    (held,) = await _held(sim, reference)
    assert (held["status"], held["money_moved"]) == ("succeeded", True)

    after = await _charge(sim, reference, token)  # one drop only; the charge is there
    assert (after.status_code, after.json()["charge_id"]) == (200, held["provider_id"])


async def test_reset_after_processing_pays_the_payout_then_drops_the_connection(
    sim: httpx.AsyncClient, simulator_url: str
) -> None:
    reference = _ref("wd_reset")
    put = await sim.put("/admin/payouts/kazcard/behaviour", json={"reset_after_processing_next": 1})
    assert put.status_code == 200
    async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await _payout(client, reference)
    assert [(h["kind"], h["status"]) for h in await _held(sim, reference)] == [("payout", "paid")]


async def test_reset_after_processing_in_a_dialect_opens_the_payment(
    sim: httpx.AsyncClient, simulator_url: str
) -> None:
    reference = _ref("dep_qr_reset")
    await _behave(sim, "kzqr", reset_after_processing_next=1)
    async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post(
                "/providers/kzqr/merchant/v3/qr",
                json={"merchant_ref": reference, "amount": {"value": "2500.00", "currency": "KZT"}},
                headers=_key("X-KZQR-Token", "kzqr"),
            )
    assert [(h["provider"], h["status"]) for h in await _held(sim, reference)] == [
        ("kzqr", "pending")
    ]


# -- cancel of a reference never seen -----------------------------------------------------------


async def test_cancel_of_an_unknown_reference_is_404_and_the_late_request_still_charges(
    sim: httpx.AsyncClient,
) -> None:
    token = await _kazcard_token(sim)
    reference = _ref("dep_late")
    # The request is stuck in the network for 2 s; the caller gives up after 0.3 s.
    await _behave(sim, "kazcard", late_next=1, timeout_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        await _charge(sim, reference, token, timeout=0.3)
    assert (await sim.get(f"/admin/providers/kazcard/charges/{reference}")).json()["charge"] is None

    cancel = await sim.post(
        f"/providers/kazcard/charges/{reference}/cancel", headers=_bearer("kazcard")
    )
    assert (cancel.status_code, cancel.json()["code"]) == (404, "not_found")
    assert await _held(sim, reference) == []  # nothing recorded

    landed = await sim.get(f"/admin/providers/kazcard/payments/{reference}", params={"wait": 10})
    assert landed.json()["charge"]["status"] == "succeeded"  # the card is charged after all
    assert [h["status"] for h in await _held(sim, reference)] == ["succeeded"]


async def test_altyncard_void_of_an_unknown_reference_is_not_found(sim: httpx.AsyncClient) -> None:
    voided = await sim.post(
        f"/providers/altyncard/gateway/payments/{_ref('dep_void')}/void",
        headers=_key("X-Altyn-Key", "altyncard"),
    )
    assert (voided.status_code, voided.json()["fault"]["code"]) == (404, "PAYMENT_NOT_FOUND")


async def test_tombstone_keeps_refusing_a_late_request(sim: httpx.AsyncClient) -> None:
    token = await _kazcard_token(sim)
    reference = _ref("dep_tomb")
    await _behave(sim, "kazcard", unknown_cancel="tombstone")
    cancel = await sim.post(
        f"/providers/kazcard/charges/{reference}/cancel", headers=_bearer("kazcard")
    )
    assert (cancel.status_code, cancel.json()["status"]) == (200, "cancelled")

    late = await _charge(sim, reference, token)
    assert late.json()["status"] == "cancelled"
    (held,) = await _held(sim, reference)
    assert (held["status"], held["tombstone"], held["money_moved"]) == ("cancelled", True, False)


# -- throttling and credentials -----------------------------------------------------------------


async def test_throttled_calls_answer_429_with_retry_after_on_every_endpoint(
    sim: httpx.AsyncClient,
) -> None:
    token = await _kazcard_token(sim)
    reference = _ref("dep_429")
    await _behave(sim, "kazcard", throttle_next=3, throttle_retry_after_seconds=7)
    calls = [
        await sim.get(f"/providers/kazcard/charges/{reference}", headers=_bearer("kazcard")),
        await sim.post(
            f"/providers/kazcard/charges/{reference}/cancel", headers=_bearer("kazcard")
        ),
        await _charge(sim, reference, token),
    ]
    assert [(c.status_code, c.headers.get("retry-after")) for c in calls] == [(429, "7")] * 3
    assert calls[0].json()["code"] == "rate_limited"
    assert await _held(sim, reference) == []  # throttled before anything was processed
    assert (await _charge(sim, reference, token)).status_code == 200

    await _behave(sim, "kzqr", throttle_next=1)
    status = await sim.get(
        "/providers/kzqr/merchant/v3/qr",
        params={"merchant_ref": reference},
        headers=_key("X-KZQR-Token", "kzqr"),
    )
    assert (status.status_code, status.headers["retry-after"]) == (429, "1")
    assert status.json()["result"] == "ERROR"

    await sim.put("/admin/payouts/kazcard/behaviour", json={"throttle_next": 1})
    payout = await sim.get(f"/providers/kazcard/payouts/{reference}", headers=_bearer("kazcard"))
    assert (payout.status_code, payout.headers["retry-after"]) == (429, "1")


async def test_expired_credentials_answer_401_token_expired(sim: httpx.AsyncClient) -> None:
    reference = _ref("dep_401")
    status_path = f"/providers/bankapp/api/v1/push-requests/{reference}"
    key = _key("X-BankApp-Key", "bankapp")
    await _behave(sim, "bankapp", expire_credentials_next=1)
    first = await sim.get(status_path, headers=key)
    assert (first.status_code, first.json()["error"]["code"]) == (401, "TOKEN_EXPIRED")
    assert (await sim.get(status_path, headers=key)).status_code == 404  # the key works again

    await _behave(sim, "kazcard", token_expiry_seconds=0)  # expired as soon as it is set
    for _ in range(2):
        card = await sim.get(f"/providers/kazcard/charges/{reference}", headers=_bearer("kazcard"))
        assert (card.status_code, card.json()["code"]) == (401, "token_expired")
    await _behave(sim, "kazcard", token_expiry_seconds=3600)
    card = await sim.get(f"/providers/kazcard/charges/{reference}", headers=_bearer("kazcard"))
    assert card.status_code == 404


# -- callbacks ----------------------------------------------------------------------------------


async def test_the_same_event_is_delivered_again_byte_for_byte(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    reference = _ref("dep_repeat")
    path = f"/hooks/bankapp/{reference}"
    await _behave(sim, "bankapp", callback_same_event_repeat=2)
    created = await sim.post(
        "/providers/bankapp/api/v1/push-requests",
        json={
            "requestId": reference,
            "amountTiyn": 250_000,
            "currency": "KZT",
            "phone": "+77011234567",
            "hookUrl": f"{receiver.url}{path}",
        },
        headers=_key("X-BankApp-Key", "bankapp"),
    )
    assert created.status_code == 201, created.text
    assert (await sim.post(f"/pay/bankapp/{reference}/confirm")).status_code == 200

    first, *again = await receiver.wait(path, 3)
    assert len(again) == 2
    assert all(d.body == first.body for d in again)
    signatures = {d.headers[BANKAPP_SIGNATURE_HEADER.lower()] for d in [first, *again]}
    assert len(signatures) == 1
    deadline = time.monotonic() + 10
    logged: list[dict[str, Any]] = []
    while len(logged) < 3:  # the simulator logs a delivery once it has read our answer
        assert time.monotonic() < deadline, logged
        await asyncio.sleep(0.02)
        logged = (await sim.get("/admin/callbacks", params={"reference": reference})).json()
    assert len(logged) == 3
    assert len({c["event_id"] for c in logged}) == 1
    assert '"ACCEPTED"' in first.body.decode()


# -- paid after expiry or cancel ----------------------------------------------------------------


async def test_a_cancelled_qr_order_is_reported_paid_afterwards(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    reference = _ref("dep_qr_late")
    path = f"/hooks/kzqr/{reference}"
    key = _key("X-KZQR-Token", "kzqr")
    await _behave(sim, "kzqr", late_success_after_expiry=True)
    created = await sim.post(
        "/providers/kzqr/merchant/v3/qr",
        json={
            "merchant_ref": reference,
            "amount": {"value": "2500.00", "currency": "KZT"},
            "notify_url": f"{receiver.url}{path}",
        },
        headers=key,
    )
    assert created.json()["data"]["state"] == "ACTIVE"

    closed = await sim.post(
        "/providers/kzqr/merchant/v3/qr/close", json={"merchant_ref": reference}, headers=key
    )
    assert closed.json()["data"]["state"] == "CLOSED"  # the cancel is answered as done
    (callback,) = await receiver.wait(path, 1)
    assert '"state": "PAID"' in callback.body.decode()
    status = await sim.get(
        "/providers/kzqr/merchant/v3/qr", params={"merchant_ref": reference}, headers=key
    )
    assert status.json()["data"]["state"] == "PAID"
    assert status.json()["data"]["paid"] == {"value": "2500.00", "currency": "KZT"}


async def test_an_expired_push_request_is_reported_paid_afterwards(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    reference = _ref("dep_push_late")
    path = f"/hooks/bankapp/{reference}"
    key = _key("X-BankApp-Key", "bankapp")
    status_path = f"/providers/bankapp/api/v1/push-requests/{reference}"
    await _behave(sim, "bankapp", late_success_after_expiry=True, late_success_delay_ms=1000)
    created = await sim.post(
        "/providers/bankapp/api/v1/push-requests",
        json={
            "requestId": reference,
            "amountTiyn": 250_000,
            "currency": "KZT",
            "phone": "+77011234567",
            "hookUrl": f"{receiver.url}{path}",
        },
        headers=key,
    )
    assert created.json()["status"] == "SENT"

    expired = await sim.post(f"/admin/providers/bankapp/payments/{reference}/expire")
    assert expired.json()["status"] == "expired"
    assert (await sim.get(status_path, headers=key)).json()["status"] == "TIMEOUT"
    (callback,) = await receiver.wait(path, 1)
    assert '"status": "ACCEPTED"' in callback.body.decode()
    shown = (await sim.get(status_path, headers=key)).json()
    assert (shown["status"], shown["paidTiyn"]) == ("ACCEPTED", 250_000)


async def test_the_provider_notices_the_expiry_itself_and_reports_the_payment(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    """Nobody asks: the order's 1 s runs out, and the payment is reported paid all the same."""
    reference = _ref("dep_qr_ttl")
    path = f"/hooks/kzqr/{reference}"
    await _behave(sim, "kzqr", late_success_after_expiry=True)
    await sim.post(
        "/providers/kzqr/merchant/v3/qr",
        json={
            "merchant_ref": reference,
            "amount": {"value": "2500.00", "currency": "KZT"},
            "notify_url": f"{receiver.url}{path}",
            "ttl_sec": 1,
        },
        headers=_key("X-KZQR-Token", "kzqr"),
    )
    (callback,) = await receiver.wait(path, 1)
    assert '"state": "PAID"' in callback.body.decode()


# -- payouts that take time ---------------------------------------------------------------------


async def test_payouts_stay_processing_then_become_paid_or_failed(sim: httpx.AsyncClient) -> None:
    put = await sim.put("/admin/payouts/kazcard/behaviour", json={"payout_processing_seconds": 0.5})
    assert put.status_code == 200
    paid_ref, closed_ref = _ref("wd_slow"), _ref("wd_slow_closed")
    created = await _payout(sim, paid_ref)
    assert (created.status_code, created.json()["status"]) == (201, "processing")
    closed = await _payout(sim, closed_ref, iban="KZ86125999004100100")
    assert (closed.json()["status"], closed.json()["failure_code"]) == ("processing", None)
    status_path = f"/providers/kazcard/payouts/{paid_ref}"
    assert (await sim.get(status_path, headers=_bearer("kazcard"))).json()["status"] == "processing"

    deadline = time.monotonic() + 10
    while (await sim.get(status_path, headers=_bearer("kazcard"))).json()["status"] == "processing":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # a bank's clock: no event tells when it settles
    shown = (await sim.get(status_path, headers=_bearer("kazcard"))).json()
    assert shown["status"] == "paid"
    replay = await _payout(sim, paid_ref)
    assert (replay.json()["status"], replay.json()["payout_id"]) == ("paid", shown["payout_id"])
    failed = await sim.get(f"/providers/kazcard/payouts/{closed_ref}", headers=_bearer("kazcard"))
    assert (failed.json()["status"], failed.json()["failure_code"]) == ("failed", "account_closed")


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
    sim: httpx.AsyncClient,
) -> None:
    reference = _ref("dep_all")
    assert await _held(sim, reference) == []
    assert (await _charge(sim, reference, await _kazcard_token(sim))).status_code == 200
    altyn = await sim.post(
        "/providers/altyncard/gateway/payments",
        json={
            "merchantReference": reference,
            "cardToken": await _altyn_token(sim),
            "amount": {"minor": 250_000, "currency": "KZT"},
        },
        headers=_key("X-Altyn-Key", "altyncard"),
    )
    assert altyn.status_code == 200
    await _instruction(sim, reference, "http://127.0.0.1:9/unused")
    assert (await _payout(sim, reference)).status_code == 201

    held = await _held(sim, reference)
    assert [(h["provider"], h["kind"], h["status"], h["amount"], h["currency"]) for h in held] == [
        ("kazcard", "charge", "succeeded", 250_000, "KZT"),
        ("altyncard", "charge", "succeeded", 250_000, "KZT"),
        ("kazbank", "payment", "pending", 500_000, "KZT"),
        ("kazcard", "payout", "paid", 100_000, "KZT"),
    ]
    assert all(h["created_at"] for h in held)
    assert sum(h["money_moved"] for h in held if h["kind"] == "charge") == 2
