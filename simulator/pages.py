"""Player-facing pages: the 3-D Secure challenge, the wallet's confirmation, the bank app's push,
the QR a phone scans, the aggregator's hosted page and the bank transfer, one page per payment.

`GET /pay/{provider}/{reference}` shows the page; its buttons POST to `/confirm` (pay, scan,
confirm in app), `/decline`, or `/transfer?amount=` (pay the transfer, any amount). The same
POSTs answer JSON to scripts and tests.
"""

from html import escape
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from simulator.faults import SimulatorError
from simulator.payments import PayerAction

if TYPE_CHECKING:
    from simulator.app import Registry

_LABELS = {
    "card": ("3-D Secure: confirm this payment", "Pass the challenge", "Fail the challenge"),
    "bank_transfer": ("Internet banking: transfer", "Pay the transfer", "Cancel"),
    "ewallet": ("Wallet: confirm the payment", "Confirm in wallet", "Decline"),
    "mobile_banking": ("Banking app: payment request", "Confirm in app", "Decline in app"),
    "qr": ("Bank app: scanned QR", "Pay (scan)", "Decline"),
    "aggregator": ("Hosted payment page", "Pay", "Cancel"),
}


def pages_router(registry: "Registry") -> APIRouter:
    router = APIRouter(tags=["player pages"])

    def describe(name: str, reference: str) -> tuple[str, dict[str, Any]]:
        if name in registry.cards:
            charge = registry.cards[name].find_charge(reference)
            if charge is None:
                raise SimulatorError(404, "not_found", f"no charge {reference!r}")
            return "card", charge.model_dump(mode="json")
        if name in registry.payments:
            payment = registry.payments[name].find(reference)
            if payment is None:
                raise SimulatorError(404, "not_found", f"no payment {reference!r}")
            return payment.method, payment.model_dump(mode="json")
        raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")

    def act(name: str, reference: str, *, pay: bool, action: PayerAction) -> dict[str, Any]:
        if name in registry.cards:
            card = registry.cards[name]
            before = card.find_charge(reference)
            charge = card.finish_challenge(reference, passed=pay)
            if before is not None and before.status == "requires_action":
                registry.notify_charge(card, charge)
            return charge.model_dump(mode="json")
        if name in registry.payments:
            return (
                registry.payments[name]
                .act(reference, pay=pay, action=action)
                .model_dump(mode="json")
            )
        raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")

    def answer(request: Request, name: str, reference: str, data: dict[str, Any]) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_page(name, reference, *describe(name, reference)))
        return JSONResponse(data)

    @router.get("/pay/{name}/{reference}", response_class=HTMLResponse)
    async def page(name: str, reference: str) -> str:
        return _page(name, reference, *describe(name, reference))

    @router.post("/pay/{name}/{reference}/confirm")
    async def confirm(
        name: str, reference: str, request: Request, method: str | None = None
    ) -> Response:
        return answer(
            request,
            name,
            reference,
            act(name, reference, pay=True, action=PayerAction(method=method)),
        )

    @router.post("/pay/{name}/{reference}/transfer")
    async def transfer(
        name: str, reference: str, request: Request, amount: int | None = None
    ) -> Response:
        return answer(
            request,
            name,
            reference,
            act(name, reference, pay=True, action=PayerAction(amount=amount)),
        )

    @router.post("/pay/{name}/{reference}/decline")
    async def decline(name: str, reference: str, request: Request) -> Response:
        return answer(
            request, name, reference, act(name, reference, pay=False, action=PayerAction())
        )

    return router


def _page(name: str, reference: str, method: str, data: dict[str, Any]) -> str:
    title, pay_label, decline_label = _LABELS.get(method, ("Payment", "Pay", "Decline"))
    amount = int(data.get("amount", 0))
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in data.items()
        if k not in ("action",)
    )
    base = f"/pay/{escape(name)}/{escape(reference)}"
    pay_action = (
        f"{base}/transfer?amount={amount}" if method == "bank_transfer" else f"{base}/confirm"
    )
    extra = ""
    if method == "aggregator":
        extra = "".join(
            f"<form method='post' action='{base}/confirm?method={m}'>"
            f"<button>Pay by {m}</button></form>"
            for m in ("card", "qr", "ewallet")
        )
    buttons = (
        ""
        if data.get("status") not in ("pending", "requires_action")
        else f"<form method='post' action='{pay_action}'><button>{pay_label}</button></form>"
        f"{extra}<form method='post' action='{base}/decline'>"
        f"<button>{decline_label}</button></form>"
    )
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title></head><body>"
        f"<h1>{escape(title)}</h1><p>Provider <b>{escape(name)}</b>: "
        f"{amount // 100}.{amount % 100:02d} {escape(str(data.get('currency', '')))}</p>"
        f"<table>{rows}</table>{buttons}</body></html>"
    )
