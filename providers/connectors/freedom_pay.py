"""Freedom Pay (ex-PayBox; Kazakhstan): cards and payouts, behind `CardProviderClient` and
`PayoutProviderClient`.

Every request is a form of `pg_*` fields with `pg_merchant_id`, a random `pg_salt` and `pg_sig`,
the md5 of `{script};{values sorted by field name};{secret}` (the script is the last part of the
path: `init_payment.php`, `add`, `direct`, `reg2reg`...); answers are XML
`<response><pg_status>ok|error</pg_status>...</response>`, signed the same way for the same
script, errors as `pg_error_code` / `pg_error_description`. Money is `pg_amount`, "%.2f" tenge,
exact (`providers.amounts`: more than two decimals is refused). Idempotency is on `pg_order_id`,
our reference; nothing else is random but the salt.

- `POST /g2g/cardstorage/add` (pg_user_id, pg_card_name, pg_card_pan, pg_card_cvc,
  pg_card_month, pg_card_year as yy) -> pg_card_token: `tokenize`
- `POST /v1/merchant/{merchant_id}/card/direct` (pg_order_id, pg_amount, pg_currency,
  pg_card_token, pg_user_id, pg_description, pg_result_url): a server-to-server charge of a saved
  card -> the payment (below); `pg_redirect_url` when 3-D Secure is needed: `charge`
- `POST /init_payment.php` (pg_order_id, pg_amount, pg_currency, pg_description, pg_result_url)
  -> pg_payment_id, pg_redirect_url: the payment page, our `requires_action`: `init_payment`
- `POST /get_status.php` (pg_order_id) -> pg_payment_id, pg_order_id, pg_transaction_status
  (partial | pending: requires_action; ok: succeeded; failed: declined; incomplete (lifetime
  expired), revoked, refunded: cancelled), pg_amount, pg_currency, pg_refund_amount,
  pg_failure_code, pg_card_pan; an unknown order is error 340 or pg_payment_id 0: `get_charge`
- `POST /cancel.php` (pg_payment_id) abandons an unpaid payment: `cancel_charge` (a status
  inquiry first: a settled payment is returned as it is, an unknown one is None)
- `POST /revoke.php` (pg_payment_id, pg_refund_amount): a full or partial refund: `refund`
- the result callback to `pg_result_url`: a form with pg_order_id, pg_payment_id, pg_amount,
  pg_currency, pg_result 1 | 0, pg_can_reject, pg_card_pan (masked), pg_card_owner (cardholder),
  pg_failure_code, pg_salt, pg_sig; the merchant answers signed XML (`callback_ack`)
- the page, inquiry, cancel, refund and result callback are `PaymentPages`, shared with the
  e-wallet connector (`providers.connectors.freedom_pay_wallet`, the payer sent to a wallet)
- payouts, signed with the payout secret (`ConnectorConfig.payout_secret`, else the API one):
  `POST /api/reg2reg` (pg_order_id, pg_amount, pg_description, pg_order_time_limit, pg_user_id,
  pg_card_token_to, pg_post_link) to a saved card; `POST /api/status` (pg_order_id)

Errors (`pg_error_code` in an `error` answer, `ERRORS`): 100 wrong signature, 101 and 9998 unknown
merchant, 120 operation not allowed for the merchant, 200 missing or wrong parameter, 490
cancel / refund not possible and 700 wrong card data are refusals (`ProviderRejected`); 340 not
found is None on inquiries; any other code (1000 internal error...) and an answer we cannot read
or whose signature does not verify leave the outcome unknown. An error answer need not verify
only when it says that the merchant or its signature was not recognised (100, 101, 9998): the
provider then cannot sign with our secret.

Assumptions ([C]: read in Freedom Pay's public documentation or integrations; everything else is
unconfirmed [U]; verify before production): [C] the signature formula (answers signed too,
nested XML tags recursively), script names, init_payment.php's fields and answer, get_status.php
with partial | pending | ok | failed | incomplete and pg_payment_id 0 for an order it does not
know, the callback's fields and our signed XML answer, cardstorage/add's and reg2reg's request
fields, a payout secret of its own, error 9998 for an unidentified merchant; [U] the statuses
revoked and refunded (cancelled, or refunded in full: no money stays with us either way); the
other error codes and which are refusals (PayBox's / Platron's heritage); `pg_failure_code`
values (passed through, lower-cased); the charge of a saved card as one call, `card/direct`,
taking pg_order_id and answering like get_status.php (`pg_redirect_url` for 3-D Secure), where
the documented flow may be `card/init` then `card/direct`; cardstorage/add answering
`pg_card_token` (and `pg_card_country`, else the BIN table decides) without a 3-D Secure step;
`pg_user_id` being the merchant id (the interface carries no player; one user may hold many
cards); `pg_order_id` taking our references (letters, digits and `_`, up to 64); cancel.php and
revoke.php taking `pg_payment_id` (found by an inquiry) and ignoring the extra `pg_order_id`;
revoke.php having no idempotency key (a refund retried after a lost answer may refund twice:
inquire `pg_refund_amount` first); reg2reg answering, and `/api/status` (an assumed path)
reporting, the payout like get_status.php (ok | failed | partial | pending), in KZT only; no
payout void (`cancel_payout` of a payout never seen is `not_found`); `pg_order_time_limit` a day
ahead in Kazakhstan time (UTC+5); `pg_post_link` sent only when set (`post_link`: the platform
polls payouts); the callback signed for the script of our result URL, `/v1/webhooks/{provider}`
(`CALLBACK_SCRIPT`, "freedom"), with `settings.webhook_secret` (configure it as Freedom Pay's
secret key), without a timestamp (a replay verifies: it is only a hint the workflow confirms by
inquiry, taken once per `{pg_payment_id}:{pg_result}`), and answered `pg_status` ok whatever we
made of it; `pg_merchant_id` "500000" in development when `ConnectorConfig.merchant_id` is unset.

Daily reports (reconciliation): `providers.reports.freedom_pay`, whose docstring gives the report's
format and what the public sources do not confirm about it (no report API of this provider is
publicly documented: the endpoint and format there are assumed).
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import httpx
from defusedxml import ElementTree
from pydantic import BaseModel, Field

from config.connectors import ConnectorConfig
from domain.cards import card_scheme
from providers.amounts import from_decimal_string
from providers.card import (
    CardConnector,
    CardData,
    CardProviderClient,
    CardToken,
    ChargeOutcome,
    ChargeRequest,
)
from providers.connector import DECIMAL_STRING, ApiKey, Endpoint, ErrorMap, Vocabulary
from providers.errors import CardRejected, ProviderOutcomeUnknown, ProviderRejected
from providers.http import ProviderHttp
from providers.payments import CallbackNotUnderstood, PaymentCallback
from providers.payout import PayoutConnector, PayoutOutcome, PayoutProviderClient
from providers.signing import SignatureError

CONNECTOR_TYPE = "freedom_pay"

DEV_MERCHANT_ID = "500000"
CALLBACK_SCRIPT = "freedom"  # the last part of our result URL, /v1/webhooks/freedom
KAZAKHSTAN_TIME = timezone(timedelta(hours=5))

TOKENS_PATH = "/g2g/cardstorage/add"
DIRECT_PATH = "/v1/merchant/{merchant_id}/card/direct"
INIT_PATH = "/init_payment.php"
STATUS_PATH = "/get_status.php"
CANCEL_PATH = "/cancel.php"
REVOKE_PATH = "/revoke.php"
PAYOUT_PATH = "/api/reg2reg"
PAYOUT_STATUS_PATH = "/api/status"

# -- signatures ---------------------------------------------------------------------------------


def script_name(path: str) -> str:
    """The script a signature names: the path from its last `/` to the end or `?`."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def signature(script: str, fields: Iterable[tuple[str, str]], secret: str) -> str:
    """md5 (lower-case hex) of `script;values sorted by field name;secret`; fields of one name
    keep their order (a stable sort)."""
    values = [value for _name, value in sorted(fields, key=lambda pair: pair[0])]
    base = ";".join([script, *values, secret])
    return hashlib.md5(base.encode()).hexdigest()  # noqa: S324 - Freedom Pay's protocol


def new_salt() -> str:
    """The random `pg_salt` of one message (only the signature is random)."""
    return secrets.token_hex(8)


def signed_form(script: str, fields: Mapping[str, str], secret: str, salt: str) -> dict[str, str]:
    """`fields` with `pg_salt` and their `pg_sig`."""
    form = {**fields, "pg_salt": salt}
    form["pg_sig"] = signature(script, form.items(), secret)
    return form


def _element_values(element: Element) -> list[str]:
    """The values an XML element's children sign: sorted by tag, nested ones recursively."""
    values: list[str] = []
    for child in sorted(element, key=lambda c: c.tag):
        if len(child):
            values += _element_values(child)
        else:
            values.append(child.text or "")
    return values


def xml_signature(script: str, root: Element, secret: str) -> str:
    """The signature of an XML message: its fields but `pg_sig`, nested tags recursively."""
    unsigned = Element(root.tag)
    unsigned.extend(child for child in root if child.tag != "pg_sig")
    base = ";".join([script, *_element_values(unsigned), secret])
    return hashlib.md5(base.encode()).hexdigest()  # noqa: S324 - Freedom Pay's protocol


def signed_xml(script: str, fields: Mapping[str, str], secret: str, salt: str) -> bytes:
    """`<response>` with `fields`, `pg_salt` and `pg_sig`, as Freedom Pay and merchants answer."""
    root = Element("response")
    for name, value in signed_form(script, fields, secret, salt).items():
        SubElement(root, name).text = value
    body: bytes = tostring(root, encoding="utf-8", xml_declaration=True)
    return body


# -- answers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An XML answer: its root (for the signature) and its top-level fields' texts."""

    root: Element
    fields: dict[str, str] = field(default_factory=dict)

    def signed_by(self, script: str, secret: str) -> bool:
        sig = self.fields.get("pg_sig", "")
        expected = xml_signature(script, self.root, secret)
        return bool(sig) and hmac.compare_digest(expected.encode(), sig.lower().encode())


def read_answer(content: bytes) -> Answer:
    """An XML `<response>`; anything else (not XML, entities, a DTD) raises ValueError."""
    try:
        root: Element = ElementTree.fromstring(content, forbid_dtd=True)
    except ParseError as exc:  # a SyntaxError: not an answer we can read
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "response":
        raise ValueError(f"XML answer is <{root.tag}>, not <response>")
    fields = {child.tag: (child.text or "").strip() for child in root if not len(child)}
    return Answer(root, fields)


class XmlErrors(ErrorMap):
    """`pg_error_code` of an XML error answer (non-2xx ones: 2xx errors are read per answer)."""

    def code_of(self, response: httpx.Response) -> str:
        try:
            code = read_answer(response.content).fields.get("pg_error_code")
        except ValueError:
            code = None
        return self.ours(code) if code else f"http_{response.status_code}"


ERRORS = XmlErrors(
    codes={
        "100": "invalid_signature",
        "101": "unknown_merchant",
        "120": "not_allowed",
        "200": "bad_request",
        "340": "not_found",
        "490": "cannot_revoke",
        "700": "invalid_card_data",
        "1000": "internal_error",
        "9998": "unknown_merchant",
    },
    prefix="freedom_",
)
# Documented refusals: nothing was processed (340 is one too: not found).
REFUSALS = frozenset({"100", "101", "120", "200", "340", "490", "700", "9998"})
# Error answers that cannot carry our signature: the provider did not recognise us.
UNSIGNED_ERRORS = frozenset({"100", "101", "9998"})

VOCABULARY = Vocabulary(
    what="pg_transaction_status",
    statuses={
        "partial": "requires_action",
        "pending": "requires_action",
        "ok": "succeeded",
        "failed": "declined",
        "incomplete": "cancelled",
        "revoked": "cancelled",
        "refunded": "cancelled",
    },
)
# Why a payment ended `cancelled` when it carries no failure code.
_CANCELLED_REASONS = {"incomplete": "expired", "revoked": "revoked", "refunded": "refunded"}


def _amount(fields: Mapping[str, str], name: str = "pg_amount") -> int:
    """A `pg_*` amount in tenge as minor units, exactly; a refund may be written negative."""
    return from_decimal_string(fields[name].removeprefix("-"))


def payment_outcome(fields: Mapping[str, str], reference: str) -> ChargeOutcome:
    """A payment answer (get_status.php, card/direct) in our terms; it raises when unreadable."""
    raw = fields["pg_transaction_status"]
    status = VOCABULARY.status(raw)
    decline = VOCABULARY.reason(fields.get("pg_failure_code") or None)
    if decline is None and status == "cancelled":
        decline = _CANCELLED_REASONS[raw]
    return ChargeOutcome(
        reference=fields.get("pg_order_id") or reference,
        charge_id=fields["pg_payment_id"],
        status=status,
        decline_code=decline if status in ("declined", "cancelled") else None,
        amount=_amount(fields),
        currency=fields["pg_currency"],
        action_url=(fields.get("pg_redirect_url") or None) if status == "requires_action" else None,
    )


def card_token(card: CardData, fields: Mapping[str, str]) -> CardToken:
    """The saved card: Freedom Pay's token; BIN, last four and scheme from the card we sent."""
    token = fields["pg_card_token"]
    if not token:
        raise ValueError("pg_card_token is empty")
    return CardToken(
        token=token,
        bin=card.number[:6],
        last4=card.number[-4:],
        scheme=card_scheme(card.number),
        issuer_country=fields.get("pg_card_country", "").upper(),
    )


def _token_form(card: CardData) -> dict[str, str]:
    form = {
        "pg_card_pan": card.number,
        "pg_card_cvc": card.cvc,
        "pg_card_month": f"{card.exp_month:02d}",
        "pg_card_year": f"{card.exp_year % 100:02d}",
    }
    if card.holder:
        form["pg_card_name"] = card.holder
    return form


def _charge_form(charge: ChargeRequest) -> dict[str, str]:
    form = {
        "pg_order_id": charge.reference,
        "pg_amount": charge.amount,
        "pg_currency": charge.currency,
        "pg_card_token": charge.token,
        "pg_description": f"Deposit {charge.reference}",
    }
    if charge.callback_url:
        form["pg_result_url"] = charge.callback_url
    return form


@dataclass(frozen=True)
class SignedForms(ApiKey):
    """No key in any header: the secret signs each form (`pg_sig`) and never travels."""

    header: str = ""

    def headers(self, secret: str) -> dict[str, str]:
        return {}


SIGNED_FORMS = SignedForms()

SPEC = CardConnector(
    auth=SIGNED_FORMS,
    errors=ERRORS,
    money=DECIMAL_STRING,
    vocabulary=VOCABULARY,
    tokens=Endpoint("POST", TOKENS_PATH, "form"),
    charges=Endpoint("POST", DIRECT_PATH, "form"),
    status=Endpoint("POST", STATUS_PATH, "form", reference_field="pg_order_id"),
    cancel=Endpoint("POST", CANCEL_PATH, "form"),
    token_body=_token_form,
    charge_body=_charge_form,
    token=lambda pair: card_token(*pair),
    outcome=lambda pair: payment_outcome(*pair),
)


def merchant_id(config: ConnectorConfig | None) -> str:
    return config.merchant_id if config is not None and config.merchant_id else DEV_MERCHANT_ID


class _Signed(ProviderHttp):
    """What Freedom Pay's clients share: signed forms out, signed XML answers in."""

    def _setup(self) -> None:
        self.merchant_id = merchant_id(self.config)

    async def _script(self, path: str, fields: Mapping[str, str], secret: str) -> Answer:
        """POST the signed form to `path`; its answer once verified and `ok`. An `error` answer
        is a ProviderRejected when its code is a documented refusal, else outcome unknown."""
        script = script_name(path)
        form = signed_form(
            script, {"pg_merchant_id": self.merchant_id, **fields}, secret, new_salt()
        )
        response = await self._request("POST", path, data=form)
        answer: Answer = self._parsed(read_answer, response.content)
        status = answer.fields.get("pg_status")
        if status == "ok":
            if not answer.signed_by(script, secret):
                raise ProviderOutcomeUnknown(
                    self.provider, "invalid_signature", f"{script} answer is not signed by us"
                )
            return answer
        if status != "error":
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", f"pg_status {status!r}")
        code = answer.fields.get("pg_error_code", "")
        detail = answer.fields.get("pg_error_description", "")
        if not code:
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", "error without a code")
        if code not in UNSIGNED_ERRORS and not answer.signed_by(script, secret):
            raise ProviderOutcomeUnknown(
                self.provider, "invalid_signature", f"error {code} is not signed by us"
            )
        if code in REFUSALS:
            raise ProviderRejected(self.provider, ERRORS.ours(code), detail)
        raise ProviderOutcomeUnknown(self.provider, ERRORS.ours(code), detail)

    async def _found(self, path: str, fields: Mapping[str, str], secret: str) -> Answer | None:
        """An inquiry: None when the provider never saw the order (340, or pg_payment_id 0)."""
        try:
            answer = await self._script(path, fields, secret)
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return None if answer.fields.get("pg_payment_id") == "0" else answer


# -- callbacks ----------------------------------------------------------------------------------


class FreedomPayCallback(PaymentCallback):
    """The result callback in our terms, with the card it was paid with (not in our common
    callback: `pg_card_pan` masked, `pg_card_owner` the cardholder's name)."""

    card_pan: str | None = Field(default=None, max_length=32)
    card_owner: str | None = Field(default=None, max_length=128)
    can_reject: bool = False


def _callback_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CallbackNotUnderstood(f"not a form: {exc}") from exc


def verify_result_callback(secret: str, body: bytes, script: str = CALLBACK_SCRIPT) -> None:
    """Raise SignatureError unless the form's `pg_sig` signs its other fields for `script`."""
    try:
        pairs = _callback_pairs(body)
    except CallbackNotUnderstood as exc:
        raise SignatureError("invalid_signature", "callback body is not a form") from exc
    sigs = [value for name, value in pairs if name == "pg_sig"]
    if len(sigs) != 1 or not sigs[0] or not any(name == "pg_salt" for name, _ in pairs):
        raise SignatureError("signature_missing", "pg_sig and pg_salt required")
    expected = signature(script, [(n, v) for n, v in pairs if n != "pg_sig"], secret)
    if not hmac.compare_digest(expected.encode(), sigs[0].strip().lower().encode()):
        raise SignatureError("invalid_signature", "pg_sig does not match the callback")


def result_callback(body: bytes) -> FreedomPayCallback:
    """A verified callback's body in our terms; CallbackNotUnderstood if it is not."""
    try:
        fields = {name: value for name, value in _callback_pairs(body) if value != ""}
        result = fields["pg_result"]
        if result not in ("0", "1"):
            raise ValueError(f"pg_result {result!r}")
        return FreedomPayCallback(
            reference=fields["pg_order_id"],
            status="succeeded" if result == "1" else "declined",
            amount=_amount(fields),
            currency=fields["pg_currency"],
            decline_code=None
            if result == "1"
            else (VOCABULARY.reason(fields.get("pg_failure_code")) or "declined"),
            provider_payment_id=fields["pg_payment_id"],
            event_id=f"{fields['pg_payment_id']}:{result}",
            card_pan=fields.get("pg_card_pan"),
            card_owner=fields.get("pg_card_owner"),
            can_reject=fields.get("pg_can_reject") == "1",
        )
    except (ValueError, LookupError, TypeError) as exc:
        raise CallbackNotUnderstood(str(exc)) from exc


# -- payments on Freedom Pay's page, and cards ------------------------------------------------


class RefundOutcome(BaseModel):
    reference: str
    charge_id: str
    amount: int  # charged
    refunded: int  # in all, after this refund
    currency: str
    status: str  # the charge's, in ours (fully refunded: cancelled)


T = TypeVar("T")
Parse = Callable[[Mapping[str, str]], T]
# The statuses of a payment still waiting for the payer (what cancel.php can abandon).
WAITING = frozenset(raw for raw, ours in VOCABULARY.statuses.items() if ours == "requires_action")


class PaymentPages(_Signed):
    """What Freedom Pay's payment clients share, whatever the payer pays with (a card, a
    wallet): a payment opened on Freedom Pay's page (init_payment.php), found by our reference
    (get_status.php), abandoned while unpaid (cancel.php), refunded (revoke.php), and the result
    callback, signed for the script of our result URL (`callback_script`). Each client reads a
    payment in its own terms (`parse`)."""

    callback_script: ClassVar[str] = CALLBACK_SCRIPT

    async def _open_page(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        callback_url: str,
        description: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> ChargeOutcome:
        """init_payment.php (with the flow's `extra` fields): `requires_action`, the payer's
        next step being `action_url`, until the page's result (callback or inquiry)."""
        fields = {
            "pg_order_id": reference,
            "pg_amount": self.spec.money.encode(amount),
            "pg_currency": currency,
            "pg_description": description or f"Deposit {reference}",
            "pg_result_url": callback_url,
            **(extra or {}),
        }
        answer = await self._script(INIT_PATH, fields, self._secret)

        def page(data: Mapping[str, str]) -> ChargeOutcome:
            if not data["pg_redirect_url"] or not data["pg_payment_id"]:
                raise ValueError("init_payment.php answered no payment page")
            return ChargeOutcome(
                reference=reference,
                charge_id=data["pg_payment_id"],
                status="requires_action",
                amount=amount,
                currency=currency,
                action_url=data["pg_redirect_url"],
            )

        return self._parsed(page, answer.fields)

    async def _payment(self, reference: str, parse: Parse[T]) -> T | None:
        """get_status.php by our reference, read by `parse`; None: never seen."""
        answer = await self._found(STATUS_PATH, {"pg_order_id": reference}, self._secret)
        return None if answer is None else self._parsed(parse, answer.fields)

    async def _close_page(self, reference: str, parse: Parse[T]) -> T | None:
        """Abandon a payment waiting for the payer (cancel.php); a settled one is returned as
        it is, an unknown one is None (Freedom Pay cancels by its payment id only: an inquiry
        first)."""
        answer = await self._found(STATUS_PATH, {"pg_order_id": reference}, self._secret)
        if answer is None:
            return None
        current = self._parsed(parse, answer.fields)  # unreadable: nothing is sent
        if answer.fields["pg_transaction_status"] not in WAITING:
            return current
        fields = {"pg_payment_id": answer.fields["pg_payment_id"], "pg_order_id": reference}
        try:
            await self._script(CANCEL_PATH, fields, self._secret)
        except ProviderRejected as exc:
            if exc.code != "cannot_revoke":  # settled meanwhile: the inquiry below tells
                raise
        return await self._payment(reference, parse)

    async def refund(self, reference: str, amount: int, currency: str) -> RefundOutcome:
        """Refund `amount` of a succeeded payment (revoke.php; all of it or part). Not
        idempotent at Freedom Pay: after a lost answer, inquire (`refunded`) before asking
        again."""
        current = await self._payment(reference, lambda data: payment_outcome(data, reference))
        if current is None:
            raise ProviderRejected(self.provider, "not_found", f"no payment {reference!r}")
        if current.status != "succeeded":
            raise ProviderRejected(self.provider, "not_refundable", f"payment is {current.status}")
        if currency != current.currency:
            raise ProviderRejected(self.provider, "currency_mismatch", f"payment in {currency}")
        fields = {
            "pg_payment_id": current.charge_id,
            "pg_order_id": reference,
            "pg_refund_amount": self.spec.money.encode(amount),
        }
        await self._script(REVOKE_PATH, fields, self._secret)
        after = await self._found(STATUS_PATH, {"pg_order_id": reference}, self._secret)
        if after is None:
            raise ProviderOutcomeUnknown(self.provider, "not_found", "refunded payment vanished")

        def refunded(data: Mapping[str, str]) -> RefundOutcome:
            outcome = payment_outcome(data, reference)
            return RefundOutcome(
                reference=reference,
                charge_id=outcome.charge_id,
                amount=outcome.amount,
                refunded=_amount(data, "pg_refund_amount") if data.get("pg_refund_amount") else 0,
                currency=outcome.currency,
                status=outcome.status,
            )

        return self._parsed(refunded, after.fields)

    @classmethod
    def verify_callback(
        cls,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
        script: str | None = None,
    ) -> None:
        """Raise SignatureError unless `pg_sig` signs the callback (for `script`, by default
        the client's `callback_script`). It has no timestamp, so `now` and the tolerance
        cannot apply: a replay verifies, and is only a hint."""
        verify_result_callback(secret, body, script or cls.callback_script)

    @classmethod
    def parse_callback(cls, body: bytes) -> FreedomPayCallback:
        return result_callback(body)

    @classmethod
    def callback_ack(cls, secret: str, *, script: str | None = None) -> tuple[bytes, str]:
        """The merchant's answer to a result callback: signed XML, `pg_status` ok."""
        signed = signed_xml(script or cls.callback_script, {"pg_status": "ok"}, secret, new_salt())
        return signed, "application/xml"


class FreedomPayClient(PaymentPages, CardProviderClient):
    """Freedom Pay's card API (see the module)."""

    spec = SPEC

    async def tokenize(self, card: CardData) -> CardToken:
        fields = {**self.spec.token_body(card), "pg_user_id": self.merchant_id}
        try:
            answer = await self._script(TOKENS_PATH, fields, self._secret)
        except ProviderRejected as exc:
            raise CardRejected(exc.provider, exc.code, exc.detail) from exc
        return self._parsed(self.spec.token, (card, answer.fields))

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        """A server-to-server charge of a saved card (`card/direct`)."""
        charge = ChargeRequest(
            reference=reference,
            token=token,
            amount=self.spec.money.encode(amount),
            currency=currency,
            callback_url=callback_url,
        )
        fields = {**self.spec.charge_body(charge), "pg_user_id": self.merchant_id}
        path = DIRECT_PATH.format(merchant_id=self.merchant_id)
        answer = await self._script(path, fields, self._secret)
        return self._parsed(self.spec.outcome, (answer.fields, reference))

    async def init_payment(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        callback_url: str,
        description: str | None = None,
    ) -> ChargeOutcome:
        """A payment on Freedom Pay's page (init_payment.php): `requires_action`, the player's
        next step being `action_url`, until the page's result (callback or inquiry)."""
        return await self._open_page(
            reference=reference,
            amount=amount,
            currency=currency,
            callback_url=callback_url,
            description=description,
        )

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the charge."""
        return await self._payment(reference, lambda data: self.spec.outcome((data, reference)))

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        """Abandon a payment waiting for the player (cancel.php); a settled one is returned as it
        is, an unknown one is None (Freedom Pay cancels by its payment id only)."""
        return await self._close_page(reference, lambda data: self.spec.outcome((data, reference)))


# -- payouts ------------------------------------------------------------------------------------

PAYOUT_VOCABULARY = Vocabulary(
    what="pg_transaction_status",
    statuses={"ok": "paid", "failed": "failed", "partial": "processing", "pending": "processing"},
)


def payout_outcome(fields: Mapping[str, str], reference: str) -> PayoutOutcome:
    status = PAYOUT_VOCABULARY.status(fields["pg_transaction_status"])
    if status == "processing":  # PayoutOutcome knows only final payouts
        raise LookupError("payout still processing")
    return PayoutOutcome(
        reference=fields.get("pg_order_id") or reference,
        payout_id=fields["pg_payment_id"],
        status=status,
        failure_code=PAYOUT_VOCABULARY.reason(fields.get("pg_failure_code") or None)
        if status == "failed"
        else None,
        amount=_amount(fields),
        currency=fields.get("pg_currency") or "KZT",
    )


PAYOUT_SPEC = PayoutConnector(
    auth=SIGNED_FORMS,
    errors=ERRORS,
    money=DECIMAL_STRING,
    vocabulary=PAYOUT_VOCABULARY,
    pay=Endpoint("POST", PAYOUT_PATH, "form"),
    status=Endpoint("POST", PAYOUT_STATUS_PATH, "form", reference_field="pg_order_id"),
    cancel=Endpoint("POST", PAYOUT_STATUS_PATH, "form", reference_field="pg_order_id"),
    pay_body=lambda payout: {},
    cancel_body=lambda payout: {},
    outcome=lambda pair: payout_outcome(*pair),
)


def now() -> datetime:
    return datetime.now(UTC)


class FreedomPayPayoutClient(_Signed, PayoutProviderClient):
    """Payouts to a saved card (`/api/reg2reg`), signed with the payout secret."""

    spec = PAYOUT_SPEC
    time_limit: ClassVar[timedelta] = timedelta(days=1)

    def _setup(self) -> None:
        super()._setup()
        payout_secret = self.config.payout_secret if self.config is not None else None
        if payout_secret is not None:  # payouts are signed with their own secret when set
            self._secret = payout_secret.get_secret_value()
        self.post_link: str | None = None  # where Freedom Pay posts payout results, if anywhere

    async def pay(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        method: str,
        destination: dict[str, Any],
    ) -> PayoutOutcome:
        if method != "card":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        if currency != "KZT":
            raise ProviderRejected(self.provider, "unsupported_currency", currency)
        card = destination.get("card")
        token = card.get("token") if isinstance(card, dict) else destination.get("card_token")
        if not isinstance(token, str) or not token:
            raise ProviderRejected(self.provider, "card_token_required", "a saved card's token")
        limit = (now() + self.time_limit).astimezone(KAZAKHSTAN_TIME)
        fields = {
            "pg_order_id": reference,
            "pg_amount": self.spec.money.encode(amount),
            "pg_description": f"Payout {reference}",
            "pg_order_time_limit": limit.strftime("%Y-%m-%d %H:%M:%S"),
            "pg_user_id": self.merchant_id,
            "pg_card_token_to": token,
        }
        if self.post_link:
            fields["pg_post_link"] = self.post_link
        answer = await self._script(PAYOUT_PATH, fields, self._secret)
        return self._final(answer, reference)

    async def get_payout(self, reference: str) -> PayoutOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payout. One
        still processing leaves the outcome unknown (ask again later)."""
        answer = await self._found(PAYOUT_STATUS_PATH, {"pg_order_id": reference}, self._secret)
        return None if answer is None else self._final(answer, reference)

    async def cancel_payout(self, *, reference: str, amount: int, currency: str) -> PayoutOutcome:
        """Freedom Pay cannot void a payout: the payout if it was made, else `not_found` (the
        caller waits out the processing window)."""
        found = await self.get_payout(reference)
        if found is None:
            raise ProviderRejected(self.provider, "not_found", f"no payout {reference!r}")
        return found

    def _final(self, answer: Answer, reference: str) -> PayoutOutcome:
        status = answer.fields.get("pg_transaction_status")
        if status in ("partial", "pending"):
            raise ProviderOutcomeUnknown(self.provider, "processing", f"payout {status}")
        outcome: PayoutOutcome = self._parsed(self.spec.outcome, (answer.fields, reference))
        return outcome


CLIENT = FreedomPayClient
PAYOUT_CLIENT = FreedomPayPayoutClient
