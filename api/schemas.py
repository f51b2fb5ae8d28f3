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


class CardIn(StrictModel):
    number: SecretStr = Field(description="PAN; exchanged for a token inside the request")
    exp_month: StrictInt = Field(ge=1, le=12)
    exp_year: StrictInt = Field(ge=2000, le=2100)
    cvc: SecretStr
    holder: str | None = Field(default=None, max_length=100)


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
