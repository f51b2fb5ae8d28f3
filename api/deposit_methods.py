"""What each deposit method needs in `details`, checked inside the request.

Card data is tokenized here at every acquirer whose routing rules accept the card, so the workflow
can fail over between acquirers without ever seeing the card number.
"""

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator

from api.errors import Problem, validation_errors
from api.schemas import CardDetails, DepositCreate, StrictModel
from config import Settings
from domain.cards import card_scheme, luhn_valid
from domain.fraud.geo import card_fingerprint, names_match
from domain.routing import RouteRequest, eligible
from providers.card import CardData, CardProviderClient, CardToken
from providers.errors import CardRejected, ProviderError

PHONE_PATTERN = r"^\+77[0-9]{9}$"


class NoDetails(StrictModel):
    pass


class EwalletDetails(StrictModel):
    wallet_account: str = Field(min_length=1, max_length=64, description="the wallet's account id")


class MobileBankingDetails(StrictModel):
    phone: str | None = Field(
        default=None, pattern=PHONE_PATTERN, description="+77XXXXXXXXX; default: the player's"
    )


class AggregatorDetails(StrictModel):
    return_url: str | None = Field(
        default=None, max_length=500, description="https:// (http:// only to localhost)"
    )

    @field_validator("return_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        """Where the player's browser is sent back: a web page, never `javascript:` or `data:`."""
        if value is None:
            return value
        parts = urlsplit(value)
        local = parts.hostname in ("localhost", "127.0.0.1")
        if not value.isprintable() or " " in value or not parts.hostname:
            raise ValueError("return_url must be an absolute https:// address")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("return_url must be an absolute https:// address")
        return value


_DETAILS: dict[str, type[BaseModel]] = {
    "bank_transfer": NoDetails,
    "ewallet": EwalletDetails,
    "mobile_banking": MobileBankingDetails,
    "qr": NoDetails,
    "aggregator": AggregatorDetails,
}


def _invalid(exc: ValidationError, code: str, detail: str) -> Problem:
    errors = validation_errors(exc.errors())
    for error in errors:
        error["loc"] = ["body", "details", *error["loc"]]
    return Problem(422, code, detail, errors=errors)


def parse_details(body: DepositCreate, *, player_phone: str) -> dict[str, str]:
    """The method's details as the workflow gets them (never card data)."""
    model = _DETAILS[body.method]
    try:
        parsed = model.model_validate(body.details)
    except ValidationError as exc:
        raise _invalid(exc, "invalid_details", f"details are invalid for {body.method}") from exc
    if isinstance(parsed, EwalletDetails):
        return {"account": parsed.wallet_account}
    if isinstance(parsed, MobileBankingDetails):
        return {"phone": parsed.phone or player_phone}
    if isinstance(parsed, AggregatorDetails) and parsed.return_url:
        return {"return_url": parsed.return_url}
    return {}


def parse_card(body: DepositCreate, *, today: date) -> CardData:
    try:
        card = CardDetails.model_validate(body.details).card
    except ValidationError as exc:
        raise _invalid(exc, "invalid_card_details", "details.card is missing or malformed") from exc
    number = card.number.get_secret_value().replace(" ", "")
    if not luhn_valid(number):
        raise Problem(422, "invalid_card_number", "The card number is not valid (Luhn check)")
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        raise Problem(422, "card_expired", "The card's expiry date has passed")
    cvc = card.cvc.get_secret_value()
    if not (cvc.isascii() and cvc.isdigit() and len(cvc) in (3, 4)):
        raise Problem(422, "invalid_cvc", "cvc must be 3 or 4 digits")
    holder = card.holder_name if card.holder_name is not None else card.holder
    if holder is not None and (not holder.strip() or not holder.isprintable()):
        raise Problem(422, "invalid_card_details", "details.card.holder_name must be a name")
    return CardData(
        number=number,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        cvc=cvc,
        holder=holder.strip() if holder else None,
    )


def card_fingerprint_key(settings: Settings) -> str:
    """The card-fingerprint secret: PAY_CARD_FINGERPRINT_SECRET, else derived from
    PAY_IDEMPOTENCY_SECRET (production requires that one)."""
    if settings.card_fingerprint_secret is not None:
        return settings.card_fingerprint_secret.get_secret_value()
    base = settings.idempotency_secret.get_secret_value().encode()
    return hmac.new(base, b"kzpay card fingerprint v1", hashlib.sha256).hexdigest()


def card_identity(card: CardData, *, player_name: str, settings: Settings) -> dict[str, Any]:
    """What the deposit keeps of the card for the risk engine, computed before the PAN leaves
    the request: its fingerprint (HMAC-SHA256 under the secret: the same card is linked across
    payments and players, two cards of one BIN and last four are not) and whether the holder
    name given is the player's (the name itself is not kept)."""
    identity: dict[str, Any] = {
        "fingerprint": card_fingerprint(card.number, card_fingerprint_key(settings))
    }
    if card.holder:
        identity["holder_matches"] = names_match(player_name, card.holder)
    return identity


def require_route(body: DepositCreate, settings: Settings, *, card: CardData | None) -> list[str]:
    """The providers whose rules accept this payment; 422 when none does."""
    request = RouteRequest(
        method=body.method,
        amount_minor=body.amount,
        currency=body.currency,
        bin=card.number[:6] if card else None,
        scheme=card_scheme(card.number) if card else None,
    )
    names = [rule.name for rule in eligible(settings.providers, request)]
    if not names:
        raise Problem(
            422,
            "method_unavailable",
            f"No provider accepts this {body.method} payment (amount, currency or card scheme)",
        )
    return names


async def tokenize_everywhere(
    providers: Mapping[str, CardProviderClient], names: list[str], card: CardData
) -> dict[str, Any]:
    """Vault the card at each eligible acquirer; at least one must accept it."""
    chosen = [providers[name] for name in names if name in providers]
    results = await asyncio.gather(*(p.tokenize(card) for p in chosen), return_exceptions=True)
    tokens: dict[str, CardToken] = {}
    rejected: CardRejected | None = None
    failed: ProviderError | None = None
    for provider, result in zip(chosen, results, strict=True):
        if isinstance(result, CardToken):
            tokens[provider.provider] = result
        elif isinstance(result, CardRejected):
            rejected = result
        elif isinstance(result, ProviderError):
            failed = result
        elif isinstance(result, BaseException):
            raise result
    if not tokens:
        if rejected is not None:
            raise Problem(
                422, "card_rejected", f"The card provider refused the card: {rejected.code}"
            )
        code = failed.code if failed else "no_acquirer"
        raise Problem(
            502, "provider_error", f"The card provider is unavailable ({code}); retry later"
        )
    first = next(iter(tokens.values()))
    return {
        "bin": first.bin,
        "last4": first.last4,
        "scheme": first.scheme,
        "issuer_country": first.issuer_country,
        "tokens": {name: token.token for name, token in tokens.items()},
    }
