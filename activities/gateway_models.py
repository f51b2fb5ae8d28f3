"""Inputs and results of the gateway activities (routing, provider calls, inquiries) and the
signal a verified provider callback becomes. They travel through workflow history: no card
number or CVC here, only provider tokens."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from activities.models import RiskCheckResult


class CardRoute(BaseModel):
    """The card as routing sees it: BIN, scheme and a token at each acquirer that vaulted it."""

    bin: str
    scheme: str
    tokens: dict[str, str]


class RouteDepositInput(BaseModel):
    deposit_id: str
    method: str
    amount_minor: int
    currency: str
    bin: str | None = None
    scheme: str | None = None
    allowed: list[str] | None = None  # card: only acquirers holding a token


class RouteCandidate(BaseModel):
    provider: str
    action_ttl_seconds: int
    processing_window_seconds: int = 120


class RouteDepositResult(BaseModel):
    candidates: list[RouteCandidate]
    skipped: list[str]  # eligible, but their circuit is open


class PrepareDepositInput(BaseModel):
    """Risk check, routing and (for a card) `processing`, in one database transaction."""

    route: RouteDepositInput
    processing_at: datetime | None = None  # set: the deposit becomes `processing` if approved


class PrepareDepositResult(BaseModel):
    risk: RiskCheckResult
    route: RouteDepositResult | None = None  # None: declined by the risk check


class ProviderCallInput(BaseModel):
    """One call to start the payment at a provider; `attempt` numbers the tries there."""

    deposit_id: str
    provider: str
    method: str
    amount_minor: int
    currency: str
    card_token: str | None = None
    details: dict[str, str] = {}
    attempt: int = 1
    inquire_first: bool = False  # an earlier try timed out: ask before sending again
    expires_in_seconds: int = 900


class ProviderCallResult(BaseModel):
    """`found` is False only from an inquiry: the provider never saw the payment."""

    found: bool
    status: str | None = None  # succeeded | declined | requires_action | pending | expired ...
    decline_code: str | None = None
    provider_payment_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    next_action: dict[str, Any] | None = None
    funding: dict[str, Any] | None = None  # how the payer funded it, where the provider says

    def pays(self, amount_minor: int, currency: str) -> bool:
        """A success for exactly this amount and currency: the only answer that credits."""
        return (
            self.found
            and self.status == "succeeded"
            and self.amount_minor == amount_minor
            and self.currency == currency
        )


class InquiryInput(BaseModel):
    deposit_id: str
    provider: str
    method: str
    attempt: int = 1  # numbers the attempt row written when the inquiry finds a final state
    # The deposit has moved on (a late report): money only held is released, never taken.
    release_held: bool = False


class RecordRouteInput(BaseModel):
    deposit_id: str
    provider: str | None
    next_action: dict[str, Any] | None
    occurred_at: datetime


class RecordRouteResult(BaseModel):
    recorded: bool


class ProviderEvent(BaseModel):
    """A verified provider callback, as the webhook signals it to the deposit's workflow."""

    provider: str
    reference: str
    status: str
    amount_minor: int | None = None
    currency: str | None = None
    decline_code: str | None = None
    provider_payment_id: str | None = None
    # The cardholder name the provider reported is not the player's (issue 18): the deposit is
    # held for review instead of credited (workflows/deposit_review.py).
    card_holder_matches: bool | None = None
