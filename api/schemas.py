"""Request and response bodies of the public API. Money is always integer minor units + currency."""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt

DepositMethod = Literal["card", "bank_transfer", "ewallet", "mobile_banking", "qr", "aggregator"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlayerCreate(StrictModel):
    external_id: str = Field(min_length=1, max_length=128)
    iin: str = Field(description="12-digit IIN; checksum and birth date are verified")
    full_name: str = Field(min_length=1, max_length=200)
    birth_date: date | None = None
    phone: str = Field(description="Kazakh mobile number, +77XXXXXXXXX")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    link_to: str | None = Field(
        default=None,
        max_length=40,
        description="A person (one IIN) has one account per merchant: a second one is refused "
        "(409 iin_already_registered) unless it names here the person's existing account it "
        "is linked to. Limits, exclusions and risk apply to the person across both.",
    )


class BalanceOut(BaseModel):
    currency: str
    available: int
    held: int


class PlayerOut(BaseModel):
    id: str
    object: Literal["player"] = "player"
    external_id: str
    full_name: str
    iin_last4: str
    birth_date: date
    phone: str
    email: str | None
    balance: BalanceOut
    created_at: datetime
    person_id: str | None = Field(
        default=None, description="the person (IIN) the account belongs to; same across accounts"
    )
    linked_to: str | None = Field(
        default=None, description="the person's account this one was explicitly linked to"
    )


class CardIn(StrictModel):
    number: SecretStr = Field(description="PAN; exchanged for a token inside the request")
    exp_month: StrictInt = Field(ge=1, le=12)
    exp_year: StrictInt = Field(ge=2000, le=2100)
    cvc: SecretStr
    holder_name: str | None = Field(
        default=None,
        max_length=100,
        description="the cardholder name as on the card (Latin or Cyrillic, any word order); "
        "compared with the player's name by the risk engine (`card_holder_mismatch`), not kept",
    )
    holder: str | None = Field(
        default=None, max_length=100, description="deprecated: the older name of holder_name"
    )


class CardDetails(StrictModel):
    card: CardIn


class ClientInfo(StrictModel):
    ip: str | None = Field(default=None, max_length=64)
    device_id: str | None = Field(default=None, max_length=128)
    user_agent: str | None = Field(default=None, max_length=512)


class DepositCreate(StrictModel):
    player_id: str = Field(min_length=1, max_length=40)
    amount: StrictInt = Field(gt=0, le=10**13, description="minor units (tiyn)")
    currency: str = Field(min_length=3, max_length=3)
    method: DepositMethod
    details: dict[str, Any] = Field(description="method-specific; for `card`: {card: {...}}")
    client: ClientInfo | None = None


class CardSummary(BaseModel):
    bin: str
    last4: str
    scheme: str
    issuer_country: str


class AttemptOut(BaseModel):
    step: str
    attempt: int
    provider: str
    outcome: str
    error_code: str | None
    unified_code: str | None = None
    latency_ms: int
    at: datetime


class RiskOut(BaseModel):
    decision: str
    score: int
    reasons: list[str]
    version: str | None = Field(default=None, description="the fraud rule set that decided")
    # Shown only where they apply (a provider that reports the holder, a deposit in review).
    card_holder_matches: bool | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="whether the cardholder name the provider reported is the player's",
    )
    review: "ReviewStateOut | None" = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="a deposit the engine sent to review: held (`hold`, not credited until "
        "approved) or credited with the person's withdrawals blocked (`credit`), and the "
        "operator's decision",
    )


class ReviewStateOut(BaseModel):
    mode: Literal["hold", "credit"]
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class LedgerTransactionOut(BaseModel):
    id: int
    key: str
    kind: str


class EventOut(BaseModel):
    status: str
    reason: str | None
    at: datetime


class DepositOut(BaseModel):
    id: str
    object: Literal["deposit"] = "deposit"
    player_id: str
    amount: int
    currency: str
    method: str
    status: str
    status_reason: str | None
    provider: str | None
    card: CardSummary | None
    next_action: dict[str, Any] | None = None
    attempts: list[AttemptOut]
    risk: RiskOut | None
    funding: dict[str, Any] | None = Field(
        default=None,
        description="how the payer funded it, where the provider says (Kaspi: Gold, or Red / "
        "Kredit / instalments and their term): financed money is the operator's to judge",
    )
    ledger: list[LedgerTransactionOut]
    events: list[EventOut]
    workflow_id: str
    created_at: datetime
    updated_at: datetime


class DepositSummaryOut(BaseModel):
    id: str
    player_id: str
    amount: int
    currency: str
    method: str
    status: str
    status_reason: str | None
    provider: str | None
    created_at: datetime


class DepositList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DepositSummaryOut]
    next_cursor: str | None
