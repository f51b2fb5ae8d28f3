"""The simulated unified accounting system (ESU). Its real integration API is not public: this
is the platform's assumption of it (`domain/compliance/esu.py`), in JSON over HTTPS with a
bearer credential (`PAY_ESU_SECRET`):

- `POST /esu/v1/authorizations` `{operator_id, iin, amount_minor, currency, payment_id}` ->
  `{decision: allowed|refused, reason, monthly_limit_minor, month_used_minor}`. Refused: people
  under 21 (by the IIN), and the IINs blocked here (self-excluded, convicted, debtors).
  `month_used_minor` is what the person deposited this calendar month (Kazakhstan time) at
  every operator: the deposits reported here plus what the admin says was used elsewhere.
- `PUT /esu/v1/operations/{operation_id}` `{operator_id, kind, payment_id, iin, amount_minor,
  currency, method, provider, occurred_at}` -> 201 `{receipt_id, duplicate: false}`; the same
  operation again -> 200 with the same receipt and `duplicate: true`; another body under the
  same id -> 409 `operation_conflict`.
- Down (`/admin/esu/behaviour`): 503 `{code: "unavailable"}`.

Empty at start: everyone is allowed, nobody has a limit. `/admin/esu` blocks and unblocks
IINs with a reason and dates, sets monthly limits, shows the reported operations.
"""

import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from config import Settings
from domain.compliance.deadlines import KAZAKHSTAN
from domain.iin import InvalidIIN, age_on, parse_iin
from simulator.faults import SimulatorError

IIN_PATTERN = r"^[0-9]{12}$"
IinPath = Annotated[str, Path(pattern=IIN_PATTERN)]
BlockReason = Literal["self_excluded", "convicted", "debtor", "underage", "other"]


class AuthorizationIn(BaseModel):
    operator_id: str = Field(min_length=1, max_length=64)
    iin: str = Field(pattern=IIN_PATTERN)
    amount_minor: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    payment_id: str = Field(min_length=1, max_length=64)


class AuthorizationOut(BaseModel):
    decision: Literal["allowed", "refused"]
    reason: str | None = None
    monthly_limit_minor: int | None = None
    month_used_minor: int = 0


class OperationIn(BaseModel):
    operator_id: str = Field(min_length=1, max_length=64)
    kind: Literal["deposit", "withdrawal", "payout"]
    payment_id: str = Field(min_length=1, max_length=64)
    iin: str = Field(pattern=IIN_PATTERN)
    amount_minor: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    method: str = Field(min_length=1, max_length=32)
    provider: str | None = Field(default=None, max_length=64)
    occurred_at: datetime


class Operation(OperationIn):
    operation_id: str
    receipt_id: str
    received_at: datetime
    deliveries: int = 1


class BlockIn(BaseModel):
    model_config = {"extra": "forbid"}
    iin: str = Field(pattern=IIN_PATTERN)
    reason: BlockReason
    blocked_from: date | None = None
    blocked_until: date | None = None


class Block(BlockIn):
    added_at: datetime


class LimitIn(BaseModel):
    model_config = {"extra": "forbid"}
    monthly_limit_minor: int | None = Field(default=None, ge=0)
    used_elsewhere_minor: int = Field(default=0, ge=0, description="this month, other operators")


class EsuBehaviour(BaseModel):
    model_config = {"extra": "forbid"}
    down: bool = False
    fail_next: int = Field(default=0, ge=0, description="the next N calls answer 503")
    fail_reports_next: int = Field(
        default=0, ge=0, description="the next N operation reports answer 503"
    )


@dataclass
class EsuState:
    blocks: dict[str, Block] = field(default_factory=dict)
    limits: dict[str, LimitIn] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    behaviour: EsuBehaviour = field(default_factory=EsuBehaviour)
    authorizations: deque[AuthorizationIn] = field(default_factory=lambda: deque(maxlen=10_000))

    def month_used(self, iin: str, now: datetime) -> int:
        month = now.astimezone(KAZAKHSTAN).strftime("%Y-%m")
        ours = sum(
            op.amount_minor
            for op in self.operations.values()
            if op.iin == iin
            and op.kind == "deposit"
            and op.occurred_at.astimezone(KAZAKHSTAN).strftime("%Y-%m") == month
        )
        limit = self.limits.get(iin)
        return ours + (limit.used_elsewhere_minor if limit else 0)

    def blocked(self, iin: str, today: date) -> Block | None:
        block = self.blocks.get(iin)
        if block is None:
            return None
        if block.blocked_from and today < block.blocked_from:
            return None
        if block.blocked_until and today > block.blocked_until:
            return None
        return block


def _comparable(body: OperationIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


def esu_router(settings: Settings) -> APIRouter:
    state = EsuState()
    api = APIRouter(tags=["ESU (unified accounting system)"])

    def admit(authorization: str) -> None:
        if authorization != f"Bearer {settings.esu_secret.get_secret_value()}":
            raise SimulatorError(401, "unauthorized", "bad credentials")
        behaviour = state.behaviour
        if behaviour.down or behaviour.fail_next > 0:
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
            raise SimulatorError(503, "unavailable", "the ESU is unavailable")

    @api.post("/esu/v1/authorizations")
    async def authorize(
        body: AuthorizationIn, authorization: str = Header(default="")
    ) -> AuthorizationOut:
        admit(authorization)
        state.authorizations.append(body)
        now = datetime.now(UTC)
        limit = state.limits.get(body.iin)
        answer = AuthorizationOut(
            decision="allowed",
            monthly_limit_minor=limit.monthly_limit_minor if limit else None,
            month_used_minor=state.month_used(body.iin, now),
        )
        try:
            born = parse_iin(body.iin).birth_date
        except InvalidIIN as exc:
            raise SimulatorError(422, "invalid_iin", str(exc)) from exc
        if age_on(born, now.astimezone(KAZAKHSTAN).date()) < 21:
            return answer.model_copy(update={"decision": "refused", "reason": "underage"})
        block = state.blocked(body.iin, now.astimezone(KAZAKHSTAN).date())
        if block is not None:
            return answer.model_copy(update={"decision": "refused", "reason": block.reason})
        return answer

    @api.put("/esu/v1/operations/{operation_id}")
    async def record(
        operation_id: Annotated[str, Path(min_length=1, max_length=64)],
        body: OperationIn,
        authorization: str = Header(default=""),
    ) -> JSONResponse:
        admit(authorization)
        if state.behaviour.fail_reports_next > 0:
            state.behaviour.fail_reports_next -= 1
            raise SimulatorError(503, "unavailable", "the ESU is unavailable")
        known = state.operations.get(operation_id)
        if known is not None:
            if _comparable(OperationIn.model_validate(known.model_dump())) != _comparable(body):
                raise SimulatorError(
                    409, "operation_conflict", f"{operation_id} was recorded with other content"
                )
            known.deliveries += 1
            return JSONResponse(
                {"operation_id": operation_id, "receipt_id": known.receipt_id, "duplicate": True}
            )
        operation = Operation(
            **body.model_dump(),
            operation_id=operation_id,
            receipt_id=f"esu-{secrets.token_hex(8)}",
            received_at=datetime.now(UTC),
        )
        state.operations[operation_id] = operation
        return JSONResponse(
            {"operation_id": operation_id, "receipt_id": operation.receipt_id, "duplicate": False},
            status_code=201,
        )

    # -- admin ------------------------------------------------------------------------------

    @api.post("/admin/esu/blocks", status_code=201)
    async def block(body: BlockIn) -> Block:
        blocked = Block(**body.model_dump(), added_at=datetime.now(UTC))
        state.blocks[body.iin] = blocked
        return blocked

    @api.delete("/admin/esu/blocks/{iin}")
    async def unblock(iin: IinPath) -> Block:
        found = state.blocks.pop(iin, None)
        if found is None:
            raise SimulatorError(404, "not_found", f"{iin} is not blocked")
        return found

    @api.put("/admin/esu/limits/{iin}")
    async def set_limit(iin: IinPath, body: LimitIn) -> LimitIn:
        state.limits[iin] = body
        return body

    @api.get("/admin/esu/operations")
    async def operations(iin: str | None = None, payment_id: str | None = None) -> list[Operation]:
        return [
            op
            for op in state.operations.values()
            if iin in (None, op.iin) and payment_id in (None, op.payment_id)
        ]

    @api.get("/admin/esu/authorizations")
    async def authorizations(iin: str | None = None) -> list[AuthorizationIn]:
        return [a for a in state.authorizations if iin in (None, a.iin)]

    @api.put("/admin/esu/behaviour")
    async def set_behaviour(body: EsuBehaviour) -> EsuBehaviour:
        state.behaviour = body
        return body

    return api
