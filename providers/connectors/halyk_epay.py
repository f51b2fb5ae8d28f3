"""Halyk ePay (Halyk Bank's card acquiring, epayment.kz) behind the `CardProviderClient` interface.

- `POST /oauth2/token` (form: grant_type=client_credentials, scope, client_id, client_secret,
  terminal) -> {access_token, token_type: Bearer, expires_in: 7200 (seconds)}. The client's token
  is cached, taken again `REFRESH_MARGIN_SECONDS` before it expires, and once when a call is
  answered 401 (that call is then sent once more). A card payment has a token of its own, asked
  for with the payment's invoiceID, amount, currency, postLink, failurePostLink and secret_hash.
- Invoice ids are numeric, 6-15 digits: ours (dep_<24 hex>) become `invoice_id(reference)`, 15
  digits of SHA-256 (never starting with 0), always the same. Our reference travels as the
  payment's `description` and comes back in answers and callbacks; an answer whose invoice is
  not the one of its description, or that is about another reference of ours (two references
  on one invoice), is never taken for the payment asked about.
- `POST /cards/save` {hpan, expDate: "MMYY", cvc, name} -> {cardID, cardMask, cardType,
  issuerCountry}: a card id for `POST /payments/cards/auth` {amount, currency, invoiceId,
  description, paymentType: "cardId", cardId: {id}, postLink, failurePostLink} (with the
  payment's token) -> a payment {id, invoiceID, amount, currency, description, status, reason,
  reasonCode, secure3D: {action} while 3-D Secure waits}.
- `GET /check-status/payment/transaction/{invoiceId}` -> {resultCode, resultMessage,
  transaction: {id, invoiceID, amount, orgAmount, currency, description, statusName, reason,
  reasonCode, cardMask, ...}}: resultCode 100 found, 101 rejected (found, declined), 102 not
  found (None), 103 error and 107 in progress (outcome unknown: ask again), 104/106/109 a
  terminal that is not ours (refused).
- `POST /operation/{id}/charge|cancel|refund` (refund `?amount=` in tenge, all or part) by
  Halyk's transaction id -> 200; the status is asked again for the answer.

Statuses: NEW, 3D and FINGERPRINT wait for the payer (`requires_action`); AUTH (held) is taken
with the charge operation before anything is reported, so a success is never money only held;
CHARGE and REFUND were charged (`succeeded`: a refund is a movement of its own, shown in
`amount_refunded`); CANCEL and CANCEL_OLD `cancelled`; REJECT and FAILED `declined`. Once the
authorisation is there, no failure of `charge` reads as "not processed". Money is tenge as a
JSON number, written and read digit for digit (never a float); more than two decimals is
refused. Errors are {code, message} with numeric codes (`ERRORS`). Callbacks (JSON to
postLink: code "ok" | "error", invoiceId, amount, currency, cardMask, reference, reason,
reasonCode, description, secret_hash) carry no HMAC: one is taken only with the secret_hash
sent for its invoice, HMAC-SHA256(webhook secret, invoiceId) hex (nothing to store), for the
invoice of the reference it names; it is only a hint, the workflow asks the status anyway.

What the public sources do not confirm, and is assumed here: a server-to-server card save
(`POST /cards/save`, its fields and answer; Halyk saves cards in its hosted widget); that amounts
may carry tiyn (two decimals); that `description` comes back as it was sent, in answers and
callbacks; the cards/auth answer's shape (a declined payment answered 200 with status REJECT or
FAILED, `secure3D.action` the page the payer is sent to); that the operations take the client's
token and the charge operation, with no amount, takes all that is held; that after refunds `amount`
is what remains charged and `orgAmount` what was charged first, with statusName REFUND once all of
it is back; reasonCode values (ISO 8583 where one exists: 05, 51, 54; 455-457 for 3-D Secure and
cancels); the error codes of `ERRORS` and that a reused invoice id is a 409; where the token
endpoint is (the OAuth host of `OAUTH_HOSTS` for Halyk's own API hosts, else
`{API root}/oauth2/token`). Not configured, the client id and the terminal (`client_id`,
`merchant_id`) are the provider's name and the client secret its API secret.

Daily reports (reconciliation): `providers.reports.halyk_epay`, whose docstring gives the report's
format and what the public sources do not confirm about it (no report API of this provider is
publicly documented: the endpoint and format there are assumed).
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from config.connectors import ConnectorConfig
from providers.amounts import InvalidAmount, from_decimal_string
from providers.card import (
    CardConnector,
    CardData,
    CardProviderClient,
    CardToken,
    ChargeOutcome,
    ChargeRequest,
)
from providers.connector import BEARER, Endpoint, ErrorMap, Money, Vocabulary, dig
from providers.errors import (
    ProviderError,
    ProviderNotProcessed,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnreachable,
)
from providers.http import classify_transport_error, retry_after_seconds
from providers.payments import CallbackNotUnderstood, PaymentCallback
from providers.signing import SignatureError

CONNECTOR_TYPE = "halyk_epay"

SCOPE = "webapi usermanagement email_send verification statement statistics payment"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
REFRESH_MARGIN_SECONDS = 300.0  # a token is taken again this long before it expires
# Halyk's API hosts and their OAuth hosts (third-party integration code; unconfirmed).
OAUTH_HOSTS = {
    "epay-api.homebank.kz": "epay-oauth.homebank.kz",
    "test-epay-api.epayment.kz": "test-epay-oauth.epayment.kz",
}
# Keys secret_hash when no webhook secret is configured: no callback check accepts it.
_NO_WEBHOOK_SECRET = b"halyk-epay: no webhook secret configured"


# -- invoices and callback hashes ---------------------------------------------------------------


def invoice_id(reference: str) -> str:
    """Our reference as Halyk's numeric invoice id: 15 digits, first one not 0, always the same."""
    digest = int.from_bytes(hashlib.sha256(reference.encode()).digest()[:8], "big")
    return str(10**14 + digest % (9 * 10**14))


def secret_hash(key: str | bytes, invoice: str) -> str:
    """The per-payment secret_hash: hex HMAC-SHA256 of the invoice id under the webhook secret."""
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, invoice.encode(), hashlib.sha256).hexdigest()


# -- money: tenge as a JSON number, never through a float ---------------------------------------


def to_tenge(minor: int) -> int | Decimal:
    """500000 tiyn -> 5000; 500010 -> Decimal("5000.10") (`dumps` writes it as 5000.10)."""
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0:
        raise InvalidAmount(f"not a non-negative integer amount: {minor!r}")
    if minor % 100 == 0:
        return minor // 100
    return Decimal(minor).scaleb(-2)


def tenge_text(minor: int) -> str:
    """The amount as a form field: "5000" or "5000.10"."""
    return str(to_tenge(minor))


def from_tenge(value: object, name: str = "amount") -> int:
    """A JSON number of tenge (read as int or Decimal, see `loads`) or a decimal string, in tiyn;
    more than two decimals, a negative amount, a float or anything else is refused."""
    if isinstance(value, bool):
        raise InvalidAmount(f"{name} is not an amount: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidAmount(f"{name} is negative: {value!r}")
        return value * 100
    if isinstance(value, Decimal):
        if not value.is_finite() or value < 0:
            raise InvalidAmount(f"{name} is not an amount: {value!r}")
        minor = value.scaleb(2)
        if minor != minor.to_integral_value():
            raise InvalidAmount(f"{name} has more than two decimals: {value!r}")
        return int(minor)
    if isinstance(value, str):
        return from_decimal_string(value)
    raise InvalidAmount(f"{name} is not an amount: {value!r}")


TENGE = Money("tenge, a JSON number (two decimals at most)", encode=to_tenge, decode=from_tenge)


def loads(body: bytes | str) -> Any:
    """JSON with its fractional numbers as Decimal (no float ever holds an amount)."""
    return json.loads(body, parse_float=Decimal)


def dumps(data: Any) -> bytes:
    """JSON with Decimal values written as numbers, digit for digit."""
    numbers: dict[str, str] = {}
    tag = uuid.uuid4().hex

    def number(value: object) -> str:
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"not JSON serializable: {value!r}")
        marker = f"{tag}:{len(numbers)}"
        numbers[json.dumps(marker)] = format(value, "f")
        return marker

    text = json.dumps(data, default=number, separators=(",", ":"))
    for marker, digits in numbers.items():
        text = text.replace(marker, digits)
    return text.encode()


# -- Halyk's words in ours ----------------------------------------------------------------------

VOCABULARY = Vocabulary(
    what="statusName",
    statuses={
        "NEW": "requires_action",  # created, the payer has not paid yet
        "3D": "requires_action",
        "FINGERPRINT": "requires_action",  # 3-D Secure's device step
        "AUTH": "succeeded",  # held: the client takes it (charge operation) before reporting
        "CHARGE": "succeeded",
        "REFUND": "succeeded",  # charged, then given back: see amount_refunded
        "CANCEL": "cancelled",
        "CANCEL_OLD": "cancelled",  # an authorisation cancelled by Halyk for its age
        "REJECT": "declined",
        "FAILED": "declined",
    },
    reasons={
        "05": "do_not_honor",
        "51": "insufficient_funds",
        "54": "expired_card",
        "455": "authentication_failed",
        "456": "expired",
        "457": "cancelled_by_merchant",
    },
)
HELD = "AUTH"
# Statuses the cancel operation ends: held, or still waiting for the payer.
CANCELLABLE = frozenset({"NEW", "3D", "FINGERPRINT", "AUTH"})

ERRORS = ErrorMap(
    path=("code",),
    codes={
        "102": "not_found",  # no such invoice or transaction
        "104": "invalid_terminal",  # the token carries no terminal
        "106": "invalid_terminal",
        "109": "invalid_terminal",  # the terminal is not this client's
        "1001": "bad_request",
        "1002": "unauthorized",
        "1003": "token_expired",
        "1004": "invalid_card_number",
        "1005": "unknown_token",  # no saved card with that id
        "1006": "reference_reused",  # the invoice was paid with another amount
        "1007": "invalid_status",  # the operation does not apply to the payment's status
        "1008": "refund_exceeds_amount",
        "1009": "invoice_reused",  # the invoice id belongs to another order
        "1010": "rate_limited",
        "1011": "temporarily_unavailable",  # 503: down, nothing processed
        "1012": "internal_error",
    },
    prefix="halyk_",
)

# check-status resultCode -> what it means for an inquiry
FOUND = frozenset({"100", "101"})
RESULTS: Mapping[str, tuple[type[ProviderError] | None, str]] = {
    "100": (None, "found"),
    "101": (None, "rejected"),
    "102": (None, "not_found"),
    "103": (ProviderOutcomeUnknown, "provider_error"),
    "104": (ProviderRejected, "invalid_terminal"),
    "106": (ProviderRejected, "invalid_terminal"),
    "107": (ProviderOutcomeUnknown, "in_progress"),
    "109": (ProviderRejected, "invalid_terminal"),
}


class HalykChargeOutcome(ChargeOutcome):
    """A charge at Halyk: `amount` is what was charged; `amount_refunded` what went back."""

    amount_refunded: int = 0


@dataclass(frozen=True)
class HalykPayment:
    """One of Halyk's payments: its statusName (AUTH and CHARGE are both `succeeded`) and the
    outcome in our terms (`charge_id` is Halyk's transaction id, the operations' `{id}`)."""

    status_name: str
    outcome: HalykChargeOutcome


def _text(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(f"{name} is missing or not text: {value!r}")
    return str(value)


def payment(
    data: Mapping[str, Any], *, status: str = "status", invoice: str = "invoiceID"
) -> HalykPayment:
    """A payment as Halyk writes it (a cards/auth answer: `status`; a check-status transaction:
    `statusName`); raises for anything we cannot read."""
    status_name = _text(data[status], status)
    ours = VOCABULARY.status(status_name)
    reference = _text(data["description"], "description")
    if _text(data[invoice], invoice) != invoice_id(reference):
        raise ValueError(f"{invoice} {data[invoice]!r} is not the invoice of {reference!r}")
    remaining = from_tenge(data["amount"], "amount")
    original = remaining
    if data.get("orgAmount") not in (None, 0, "", "0"):
        original = from_tenge(data["orgAmount"], "orgAmount")
        if remaining > original:
            raise ValueError(f"amount {data['amount']} is more than orgAmount {data['orgAmount']}")
    currency = _text(data["currency"], "currency")
    decline = None
    if ours in ("declined", "cancelled"):
        decline = VOCABULARY.reason(data.get("reasonCode"))
    action = dig(data, ("secure3D", "action")) if ours == "requires_action" else None
    if action is not None and not isinstance(action, str):
        raise ValueError(f"secure3D.action is not a URL: {action!r}")
    return HalykPayment(
        status_name=status_name,
        outcome=HalykChargeOutcome.model_validate(
            {
                "reference": reference,
                "charge_id": _text(data["id"], "id"),
                "status": ours,
                "decline_code": decline,
                "amount": original,
                "amount_refunded": original - remaining,
                "currency": currency,
                "action_url": action,
            }
        ),
    )


def transaction(answer: Mapping[str, Any]) -> HalykPayment:
    """The payment of a check-status answer found (resultCode 100 or 101: declined)."""
    code = _text(answer["resultCode"], "resultCode")
    if code not in FOUND:
        raise ValueError(f"resultCode {code} carries no transaction")
    found = payment(answer["transaction"], status="statusName")
    if code == "101" and found.outcome.status != "declined":
        raise ValueError(f"resultCode 101 (rejected) with statusName {found.status_name}")
    return found


def card_token(data: Mapping[str, Any]) -> CardToken:
    mask = _text(data["cardMask"], "cardMask")
    if not (mask[:6].isdigit() and mask[-4:].isdigit()):
        raise ValueError(f"cardMask {mask!r} shows no BIN and last four digits")
    kind = _text(data["cardType"], "cardType").upper()
    return CardToken(
        token=_text(data["cardID"], "cardID"),
        bin=mask[:6],
        last4=mask[-4:],
        scheme={"MC": "mastercard", "MASTER": "mastercard"}.get(kind, kind.lower()),
        issuer_country=_text(data["issuerCountry"], "issuerCountry"),
    )


def _token_body(card: CardData) -> dict[str, Any]:
    return {
        "hpan": card.number,
        "expDate": f"{card.exp_month:02d}{card.exp_year % 100:02d}",
        "cvc": card.cvc,
        "name": card.holder,
    }


def _charge_body(charge: ChargeRequest) -> dict[str, Any]:
    return {
        "amount": charge.amount,
        "currency": charge.currency,
        "invoiceId": invoice_id(charge.reference),
        "description": charge.reference,
        "paymentType": "cardId",
        "cardId": {"id": charge.token},
        "postLink": charge.callback_url,
        "failurePostLink": charge.callback_url,
    }


@dataclass(frozen=True, kw_only=True)
class HalykConnector(CardConnector):
    """Halyk's card API: the common card flows plus its token, charge (capture) and refund
    operations. `status` takes the invoice id, `cancel`, `capture` and `refund` the
    transaction id, in `{reference}`."""

    oauth: Endpoint
    capture: Endpoint
    refund: Endpoint
    scope: str


SPEC = HalykConnector(
    auth=BEARER,  # the access token, not the API secret
    errors=ERRORS,
    vocabulary=VOCABULARY,
    money=TENGE,
    oauth=Endpoint("POST", TOKEN_PATH, encoding="form"),
    tokens=Endpoint("POST", "/cards/save"),
    charges=Endpoint("POST", "/payments/cards/auth"),
    status=Endpoint("GET", "/check-status/payment/transaction/{reference}"),
    cancel=Endpoint("POST", "/operation/{reference}/cancel"),
    capture=Endpoint("POST", "/operation/{reference}/charge"),
    refund=Endpoint("POST", "/operation/{reference}/refund", encoding="query"),
    token_body=_token_body,
    charge_body=_charge_body,
    token=card_token,
    outcome=lambda data: payment(data).outcome,
    scope=SCOPE,
)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    terminal: str


def credentials(provider: str, secret: str, config: ConnectorConfig | None) -> Credentials:
    """The OAuth client and terminal: configured, or the provider's name and API secret."""
    client_secret = config.client_secret if config is not None else None
    return Credentials(
        client_id=(config.client_id if config is not None else None) or provider,
        client_secret=client_secret.get_secret_value() if client_secret else secret,
        terminal=(config.merchant_id if config is not None else None) or provider,
    )


def token_url(root: str) -> str:
    """Where tokens are issued: Halyk's OAuth host for its own API hosts, else under the root."""
    url = httpx.URL(root)
    host = OAUTH_HOSTS.get(url.host)
    if host is not None:
        return str(url.copy_with(host=host, path=TOKEN_PATH, query=None))
    return root.rstrip("/") + TOKEN_PATH


# (the token refused last time, or None) -> a token to send
TokenSource = Callable[[str | None], Awaitable[str]]


class HalykEpayClient(CardProviderClient):
    """Halyk ePay for one terminal. Holds the client's access token (one per client object:
    build one per process). `clock` (monotonic seconds) decides when the token is stale.

    Without a webhook secret in the connector's configuration, secret_hash is keyed with a value
    no callback check accepts: the callbacks are refused (401) and payments settle by polling."""

    spec: ClassVar[HalykConnector] = SPEC

    def _setup(self) -> None:
        config, secret = self.config, self._secret
        self.credentials = credentials(self.provider, secret, config)
        self.clock: Callable[[], float] = time.monotonic
        self._token_url = token_url(self._base)
        webhook = config.webhook_secret if config is not None else None
        self._hash_key: bytes = (
            webhook.get_secret_value().encode()
            if webhook is not None
            else hmac.new(secret.encode(), _NO_WEBHOOK_SECRET, hashlib.sha256).digest()
        )
        self._token: str | None = None
        self._token_stale_at = 0.0
        self._token_lock = asyncio.Lock()

    # -- access tokens --------------------------------------------------------------------------

    async def _issue(self, invoice: Mapping[str, str] | None = None) -> tuple[str, float]:
        """A new access token and its lifetime in seconds. Nothing is paid by asking for one, so
        every failure here is 'not processed' (a 5xx or lost answer: the API is unreachable)."""
        creds = self.credentials
        form = {
            "grant_type": "client_credentials",
            "scope": self.spec.scope,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "terminal": creds.terminal,
            **(invoice or {}),
        }
        try:
            response = await self._http.post(self._token_url, data=form, timeout=self._timeout)
        except httpx.TransportError as exc:
            raise ProviderUnreachable(self.provider, "token_unavailable", repr(exc)) from exc
        status = response.status_code
        if status == 429:
            retry = retry_after_seconds(response)
            raise ProviderThrottled(self.provider, "throttled", retry_after=retry)
        if 400 <= status < 500:
            raise ProviderRejected(self.provider, self.spec.errors.code_of(response), "token")
        if status >= 300:
            raise ProviderUnreachable(self.provider, "token_unavailable", f"HTTP {status}")
        try:
            data = loads(response.content)
            token = _text(data["access_token"], "access_token")
            lifetime = int(_text(data["expires_in"], "expires_in"))
            if lifetime <= 0:
                raise ValueError(f"expires_in {lifetime}")
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderUnreachable(self.provider, "token_unavailable", str(exc)) from exc
        return token, float(lifetime)

    async def _client_token(self, refused: str | None = None) -> str:
        """The cached token, unless it is about to expire or was just refused (401)."""
        async with self._token_lock:
            usable = (
                self._token is not None
                and self._token != refused
                and self.clock() < self._token_stale_at
            )
            if not usable:
                token, lifetime = await self._issue()
                margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
                self._token, self._token_stale_at = token, self.clock() + lifetime - margin
            assert self._token is not None
            return self._token

    def _payment_token(self, fields: Mapping[str, str]) -> TokenSource:
        """A card payment's own token (never cached: it names the payment)."""

        async def issue(_refused: str | None) -> str:
            return (await self._issue(fields))[0]

        return issue

    # -- requests -------------------------------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        path: str,
        token: str,
        json: object,
        data: Mapping[str, Any] | None,
    ) -> httpx.Response:
        headers = self.spec.auth.headers(token)
        content = None
        if json is not None:
            content = dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            return await self._http.request(
                method,
                self._base + path,
                content=content,
                data=data,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise classify_transport_error(self.provider, exc) from exc

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: Mapping[str, Any] | None = None,
        token: TokenSource | None = None,
    ) -> httpx.Response:
        """A call with a bearer token; a 401 (refused before processing) takes a new token and
        sends the call once more. Every answer is classified as for every provider."""
        source = token or self._client_token
        bearer = await source(None)
        response = await self._exchange(method, path, bearer, json, data)
        if response.status_code == 401:
            bearer = await source(bearer)
            response = await self._exchange(method, path, bearer, json, data)
        self._classify_status(response)
        return response

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        return await self._send(method, path, json=json, data=data)

    def _json(self, response: httpx.Response) -> Any:
        return self._parsed(lambda r: loads(r.content), response)

    # -- payments -------------------------------------------------------------------------------

    def secret_hash(self, invoice: str) -> str:
        return secret_hash(self._hash_key, invoice)

    async def _status(self, reference: str) -> HalykPayment | None:
        """What Halyk holds under our reference's invoice; None when it never saw it."""
        response = await self._lookup(self.spec.status, invoice_id(reference))
        if response is None:
            return None
        answer = self._json(response)
        code = self._parsed(lambda a: _text(a["resultCode"], "resultCode"), answer)
        error, ours = RESULTS.get(code, (ProviderOutcomeUnknown, "invalid_response"))
        message = str(answer.get("resultMessage") or f"resultCode {code}")
        if error is not None:
            raise error(self.provider, ours, message)
        if ours == "not_found":
            return None
        found = self._parsed(transaction, answer)
        if found.outcome.reference != reference:  # two of our references on one invoice
            detail = f"invoice {invoice_id(reference)} holds {found.outcome.reference!r}"
            raise ProviderOutcomeUnknown(self.provider, "invoice_collision", detail)
        return found

    async def _settled(self, reference: str, what: str) -> HalykPayment:
        """The status after an operation that was answered: it exists, whatever the answer."""
        found = await self._status(reference)
        if found is None:
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", f"{what}: not found")
        return found

    async def _capture(self, reference: str, held: HalykPayment) -> HalykChargeOutcome:
        """Take a held payment (AUTH). A refusal may mean it was taken or cancelled meanwhile:
        the status says; still held afterwards, the outcome is unknown."""
        with contextlib.suppress(ProviderRejected):
            await self._call(self.spec.capture, held.outcome.charge_id)
        after = await self._settled(reference, "capture")
        if after.status_name == HELD:
            raise ProviderOutcomeUnknown(self.provider, "not_captured", "still held (AUTH)")
        return after.outcome

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        """Pay with a saved card under the reference's invoice, with a token of its own; a held
        payment is then taken. After the authorisation nothing reads as 'not processed'."""
        try:
            tenge = self.spec.money.encode(amount)
        except InvalidAmount as exc:
            raise ProviderRejected(self.provider, "invalid_amount", str(exc)) from exc
        invoice = invoice_id(reference)
        fields = {
            "invoiceID": invoice,
            "amount": tenge_text(amount),
            "currency": currency,
            "secret_hash": self.secret_hash(invoice),
        }
        if callback_url:
            fields |= {"postLink": callback_url, "failurePostLink": callback_url}
        body = self.spec.charge_body(
            ChargeRequest(
                reference=reference,
                token=token,
                amount=tenge,
                currency=currency,
                callback_url=callback_url,
            )
        )
        method, path, *_ = self.spec.charges.request(reference)
        response = await self._send(method, path, json=body, token=self._payment_token(fields))
        found = self._answer(payment, response)
        if found.outcome.reference != reference:
            raise ProviderOutcomeUnknown(
                self.provider, "invalid_response", f"answer is about {found.outcome.reference!r}"
            )
        if found.status_name != HELD:
            return found.outcome
        try:
            return await self._capture(reference, found)
        except ProviderNotProcessed as exc:  # the payment is held there all the same
            raise ProviderOutcomeUnknown(self.provider, "not_captured", str(exc)) from exc

    async def get_charge(
        self, reference: str, *, release_held: bool = False
    ) -> ChargeOutcome | None:
        """Status inquiry by our reference; None means Halyk never saw the invoice. A held
        payment (AUTH) is taken first: ours, asked for, and never reported as only held —
        unless the deposit has moved on (`release_held`: a late request that landed after
        failover or expiry), when the hold is cancelled instead: taking it would charge the
        payer a second time."""
        found = await self._status(reference)
        if found is None:
            return None
        if found.status_name == HELD:
            if release_held:
                return await self.cancel_charge(reference)
            return await self._capture(reference, found)
        return found.outcome

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        """Abandon a payment still waiting for the payer or held (cancel operation); a settled
        one is returned as it is; None when Halyk never saw the invoice."""
        found = await self._status(reference)
        if found is None:
            return None
        if found.status_name not in CANCELLABLE:
            return found.outcome
        with contextlib.suppress(ProviderRejected):  # settled meanwhile: the status says
            await self._call(self.spec.cancel, found.outcome.charge_id)
        after = await self._settled(reference, "cancel")
        if after.status_name in CANCELLABLE:
            raise ProviderOutcomeUnknown(self.provider, "not_cancelled", after.status_name)
        return after.outcome

    async def refund(self, reference: str, amount: int, currency: str) -> ChargeOutcome:
        """Give back `amount` (minor units: all or part of what is left) of a charged payment;
        the answer is the payment afterwards (`amount_refunded`). Halyk documents no
        idempotency key: after an unknown outcome, read `amount_refunded` before asking again."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ProviderRejected(self.provider, "invalid_amount", repr(amount))
        found = await self._status(reference)
        if found is None:
            raise ProviderRejected(self.provider, "not_found", reference)
        if currency != found.outcome.currency:
            detail = f"{currency} for a payment in {found.outcome.currency}"
            raise ProviderRejected(self.provider, "currency_mismatch", detail)
        transaction_id = found.outcome.charge_id
        await self._call(self.spec.refund, transaction_id, {"amount": tenge_text(amount)})
        try:
            return (await self._settled(reference, "refund")).outcome
        except ProviderError as exc:  # refunded: only the answer is missing
            raise ProviderOutcomeUnknown(self.provider, "refund_status_unknown", str(exc)) from exc

    # -- callbacks ------------------------------------------------------------------------------

    @classmethod
    def verify_callback(
        cls,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        """Raise SignatureError unless the callback's secret_hash is the one sent for its
        invoice, and that invoice is the one of the reference it names. Halyk sends no
        timestamp: a repeat is caught by its body, and the workflow asks the status anyway."""
        try:
            data = loads(body)
            invoice = _text(data["invoiceId"], "invoiceId")
            given = data["secret_hash"]
            reference = _text(data["description"], "description")
        except (ValueError, LookupError, TypeError) as exc:
            raise SignatureError(
                "signature_missing", "invoiceId, description and secret_hash required"
            ) from exc
        if not isinstance(given, str) or not given:
            raise SignatureError("signature_missing", "secret_hash required")
        if not hmac.compare_digest(secret_hash(secret, invoice), given.strip().lower()):
            raise SignatureError("invalid_signature", "secret_hash does not match the invoice")
        if invoice_id(reference) != invoice:
            raise SignatureError("invalid_signature", "invoiceId is not the description's")

    @classmethod
    def parse_callback(cls, body: bytes) -> PaymentCallback:
        """A verified callback in our terms: "ok" succeeded, "error" declined (a hint either
        way); our reference is its description; no event id (repeats are told by the body)."""
        try:
            data = loads(body)
            code = data["code"]
            if code not in ("ok", "error"):
                raise ValueError(f"unknown code {code!r}")
            return PaymentCallback(
                reference=_text(data["description"], "description"),
                status="succeeded" if code == "ok" else "declined",
                amount=from_tenge(data["amount"]),
                currency=_text(data["currency"], "currency"),
                decline_code=None if code == "ok" else VOCABULARY.reason(data.get("reasonCode")),
                provider_payment_id=None if data.get("id") is None else str(data["id"]),
            )
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


CLIENT = HalykEpayClient
