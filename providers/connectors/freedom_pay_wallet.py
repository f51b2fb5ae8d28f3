"""Freedom Pay (ex-PayBox; Kazakhstan) e-wallet payments (our `ewallet` method), behind the
`PaymentProviderClient` interface, with refunds.

The same gateway, forms and answers as Freedom Pay's card connector (`providers.connectors.
freedom_pay`, whose machinery this module reuses: signed `pg_*` forms, `pg_sig` = md5 of
`{script};{values sorted by field name};{secret}` with a random `pg_salt`, signed XML answers,
its error codes, statuses and result callback); only the flow differs: the payer is sent to the
page of a wallet (`pg_payment_system`) instead of the card form. Money is `pg_amount`, "%.2f"
tenge, exact; our reference is `pg_order_id`.

- `POST /init_payment.php` (pg_order_id, pg_amount, pg_currency, pg_description,
  pg_result_url, pg_payment_system, pg_user_phone: the wallet's phone, pg_lifetime: seconds)
  -> pg_payment_id, pg_redirect_url: our `pending`, the player's next action
  {"type": "redirect", "url": pg_redirect_url, "expires_at": now + pg_lifetime}
- `POST /get_status.php` (pg_order_id) -> pg_payment_id, pg_order_id, pg_transaction_status,
  pg_amount, pg_currency, pg_failure_code, pg_redirect_url, pg_refund_amount: the card
  connector's vocabulary (`freedom_pay.VOCABULARY`) in the words of asynchronous payments:
  partial | pending: pending (the card's requires_action); ok: succeeded; failed: declined;
  incomplete (the page's lifetime ran out): expired; revoked, refunded: cancelled. An unknown
  order (error 340, or pg_payment_id 0) is None: `get_payment`
- `POST /cancel.php` (pg_payment_id, after an inquiry) abandons an unpaid payment; a settled one
  is returned as it is: `cancel_payment`
- `POST /revoke.php` (pg_payment_id, pg_refund_amount): a full or partial refund of a
  succeeded payment (`freedom_pay.RefundOutcome`): `refund`
- the result callback to `pg_result_url` (`/v1/webhooks/freedom_wallet`): Freedom Pay's signed
  form (pg_order_id, pg_payment_id, pg_amount, pg_currency, pg_result 1 | 0, pg_failure_code),
  read as the card connector reads it (`freedom_pay.result_callback`: pg_result 1 succeeded,
  0 declined; only a hint, the workflow confirms by inquiry, taken once per
  `{pg_payment_id}:{pg_result}`), signed for the script `freedom_wallet` and answered with
  signed XML `pg_status` ok (`callback_ack`)

Errors are the card connector's (`freedom_pay.ERRORS`: 100, 101, 120, 200, 490, 9998 refusals,
340 not found, anything else or an answer whose signature does not verify: outcome unknown).
Refused here before anything is sent: another method than `ewallet` (`unsupported_method`) and
a payment without a wallet account (`invalid_wallet_account`).

Assumptions ([C]: Freedom Pay's public documentation or integrations, docs.freedompay.kz; [U]:
unconfirmed; verify before production), besides the card connector's (signatures, statuses,
errors, cancel and refund): [C] init_payment.php sends the payer to `pg_redirect_url` and asks
the payer for whatever the merchant did not send (the payment system, the phone); it takes
`pg_user_phone` (digits from the country code, e.g. 77777777777) and `pg_lifetime` (300 to
604800 seconds: ours is kept within those bounds, so the page may outlive a payment shorter than
five minutes, which the workflow then cancels); `pg_order_id` up to 50 characters (ours are
28); PayBox's result callbacks name the `pg_payment_system` a payment was made with. [U] the
wallet is chosen by `pg_payment_system` in init_payment.php (the current documentation lists a
`pg_payment_method`, e.g. `mobile_commerce` for mobile balance: the field and the wallet's code,
`payment_system`, default "WALLET", must be confirmed with Freedom Pay for the merchant
account); the player's wallet account travels as `pg_user_phone` (Kazakh wallets are known by
the phone number): one written as a phone number in international form (11 to 15 digits, with
or without "+", spaces, dashes, brackets) is sent as Freedom Pay writes phones, digits only
("+7 701 123-45-67" -> "77011234567"), any other account as it is, for Freedom Pay to take or
refuse (error 200: a refusal); the statuses, error codes, cancel.php, revoke.php and the result
callback of a wallet payment are those of a card payment on the page (no card fields in the
callback: no cardholder check); `incomplete` means the page's lifetime ran out (our `expired`,
decline `expired`); get_status.php may leave out `pg_redirect_url` (a pending payment found by
inquiry then has no action); the callback is signed for the script of our result URL,
`freedom_wallet` (`callback_script`: a provider configured under another name needs its own),
with `settings.webhook_secret` (configure it as Freedom Pay's secret key).

Daily reports (reconciliation): `providers.reports.freedom_pay_wallet`, whose docstring gives
the report's format and what the public sources do not confirm about it (no report API of this
provider is publicly documented: the endpoint and format there are assumed).
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from providers.connector import DECIMAL_STRING, Endpoint, Vocabulary
from providers.connectors import freedom_pay
from providers.connectors.freedom_pay import (
    CANCEL_PATH,
    ERRORS,
    INIT_PATH,
    SIGNED_FORMS,
    STATUS_PATH,
    PaymentPages,
    payment_outcome,
)
from providers.errors import ProviderRejected
from providers.payments import (
    PaymentConnector,
    PaymentOutcome,
    PaymentProviderClient,
    PaymentRequest,
    PaymentStatus,
)

CONNECTOR_TYPE = "freedom_pay_wallet"
METHOD = "ewallet"

CALLBACK_SCRIPT = "freedom_wallet"  # the last part of our result URL, /v1/webhooks/freedom_wallet
PAYMENT_SYSTEM = "WALLET"  # Freedom Pay's code of the wallet the payer is sent to (assumed)
LIFETIME_SECONDS = (300, 604_800)  # what pg_lifetime takes

# The card connector's statuses in the words of asynchronous payments: waiting for the payer is
# `pending`, a page whose lifetime ran out (`incomplete`) `expired`.
STATUSES = {
    raw: "pending" if ours == "requires_action" else ours
    for raw, ours in freedom_pay.VOCABULARY.statuses.items()
} | {"incomplete": "expired"}
VOCABULARY = Vocabulary(what="pg_transaction_status", statuses=STATUSES)

_PHONE_PUNCTUATION = re.compile(r"[\s()-]")


def utc_now() -> datetime:
    return datetime.now(UTC)


def wallet_phone(account: str) -> str:
    """`pg_user_phone` for the wallet account: a phone number as Freedom Pay writes one, digits
    from the country code ("+7 701 123-45-67" -> "77011234567"); any other account as it is.
    ValueError when there is none."""
    digits = _PHONE_PUNCTUATION.sub("", account).removeprefix("+")
    if digits.isascii() and digits.isdigit() and 11 <= len(digits) <= 15:
        return digits
    if not account.strip():
        raise ValueError("no wallet account")
    return account


def lifetime(expires_in_seconds: int) -> int:
    """Our payment's lifetime within what `pg_lifetime` takes."""
    shortest, longest = LIFETIME_SECONDS
    return min(max(expires_in_seconds, shortest), longest)


def wallet_form(payment: PaymentRequest) -> dict[str, str]:
    """init_payment.php's fields of the wallet flow, beside those of any page (the client adds
    `pg_payment_system`): the wallet's phone and the page's lifetime."""
    return {
        "pg_user_phone": wallet_phone(payment.details.get("account", "")),
        "pg_lifetime": str(lifetime(payment.expires_in_seconds)),
    }


SPEC = PaymentConnector(
    auth=SIGNED_FORMS,
    errors=ERRORS,
    money=DECIMAL_STRING,
    vocabulary=VOCABULARY,
    create=Endpoint("POST", INIT_PATH, "form"),
    status=Endpoint("POST", STATUS_PATH, "form", reference_field="pg_order_id"),
    cancel=Endpoint("POST", CANCEL_PATH, "form"),
    create_body=wallet_form,
)


def redirect(url: str | None, expires_at: str | None = None) -> dict[str, Any]:
    """The player's next step: the wallet's page at Freedom Pay (none without its URL)."""
    return {"type": "redirect", "url": url, "expires_at": expires_at} if url else {}


def wallet_outcome(fields: Mapping[str, str], reference: str) -> PaymentOutcome:
    """A get_status.php answer in our terms: read and checked as the card connector reads it
    (amounts exact, statuses known), then in the words of asynchronous payments; it raises when
    unreadable or about another order."""
    read = payment_outcome(fields, reference)
    if read.reference != reference:
        raise ValueError(f"asked about {reference!r}, answered about {read.reference!r}")
    status = cast(PaymentStatus, VOCABULARY.status(fields["pg_transaction_status"]))
    return PaymentOutcome(
        reference=reference,
        payment_id=read.charge_id,
        method=METHOD,
        status=status,
        amount=read.amount,
        currency=read.currency,
        amount_received=read.amount if status == "succeeded" else None,
        decline_code=read.decline_code,
        action=redirect(read.action_url),
    )


class FreedomPayWalletClient(PaymentPages, PaymentProviderClient):
    """Freedom Pay's e-wallet payments (see the module); `payment_system` is the wallet's code
    at Freedom Pay."""

    spec = SPEC
    callback_script = CALLBACK_SCRIPT
    payment_system: str = PAYMENT_SYSTEM

    async def create_payment(
        self,
        *,
        reference: str,
        method: str,
        amount: int,
        currency: str,
        details: dict[str, str],
        callback_url: str,
        expires_in_seconds: int,
    ) -> PaymentOutcome:
        """The wallet's page for the player at `details["account"]` (its phone number)."""
        if method != METHOD:
            raise ProviderRejected(self.provider, "unsupported_method", method)
        payment = PaymentRequest(
            reference=reference,
            method=method,
            amount=self.spec.money.encode(amount),
            currency=currency,
            details=details,
            callback_url=callback_url,
            expires_in_seconds=expires_in_seconds,
        )
        try:
            fields = self.spec.create_body(payment)
        except ValueError as exc:
            raise ProviderRejected(self.provider, "invalid_wallet_account", str(exc)) from exc
        page = await self._open_page(
            reference=reference,
            amount=amount,
            currency=currency,
            callback_url=callback_url,
            extra={**fields, "pg_payment_system": self.payment_system},
        )
        until = utc_now() + timedelta(seconds=lifetime(expires_in_seconds))
        return PaymentOutcome(
            reference=reference,
            payment_id=page.charge_id,
            method=METHOD,
            status="pending",
            amount=amount,
            currency=currency,
            action=redirect(page.action_url, until.isoformat()),
        )

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        """Status inquiry by our reference; None means Freedom Pay never saw the payment."""
        return await self._payment(reference, lambda fields: wallet_outcome(fields, reference))

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        """Close the page unless the payment is settled (then: as it is); None when Freedom Pay
        never saw it."""
        return await self._close_page(reference, lambda fields: wallet_outcome(fields, reference))


CLIENT = FreedomPayWalletClient
