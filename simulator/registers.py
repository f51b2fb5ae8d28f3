"""The simulated exclusion registers: who may not play in Kazakhstan, looked up by IIN.

Four registers (`domain.compliance.exclusions.Register`): self-exclusion (filed through eGov,
6 months to 10 years, irrevocable), the Unified Register of Debtors, civil servants and
military servicemen. The real services are reached by the operator through their own channels;
this one assumes a single lookup per IIN that answers every active listing:

- `GET /registers/v1/persons/{iin}` (`Authorization: Bearer <PAY_EXCLUSION_REGISTRY_SECRET>`):
  `{iin, listings: [{register, reason, listed_from, listed_until}], checked_at}`; 503
  `{code: "unavailable"}` when the service is down.

All registers are empty at start, so every check answers "not listed". `/admin/registers`
steers them: add and remove IINs with a reason and dates (removing an active self-exclusion
early is refused, 409 `self_exclusion_irrevocable`), make the service go down or fail the next
lookups, and count the lookups per IIN (to see the platform's cache at work).
"""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path
from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from domain.compliance.exclusions import Register, self_exclusion_term_problem
from simulator.faults import SimulatorError

IIN_PATTERN = r"^[0-9]{12}$"
IinPath = Annotated[str, Path(pattern=IIN_PATTERN)]


class EntryIn(BaseModel):
    model_config = {"extra": "forbid"}
    iin: str = Field(pattern=IIN_PATTERN)
    reason: str | None = Field(default=None, max_length=200)
    listed_from: date | None = Field(default=None, description="default: today")
    listed_until: date | None = Field(default=None, description="none: until removed")


class Entry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    register_: Register = Field(alias="register")
    iin: str
    reason: str | None
    listed_from: date
    listed_until: date | None
    added_at: datetime


class Listing(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    register_: Register = Field(alias="register")
    reason: str | None
    listed_from: date
    listed_until: date | None


class PersonAnswer(BaseModel):
    iin: str
    listings: list[Listing]
    checked_at: datetime


class RegistersBehaviour(BaseModel):
    model_config = {"extra": "forbid"}
    down: bool = Field(default=False, description="every lookup answers 503")
    fail_next: int = Field(default=0, ge=0, description="the next N lookups answer 503")
    latency_ms: int = Field(default=0, ge=0, le=60_000)


@dataclass
class RegistersState:
    entries: dict[tuple[Register, str], Entry] = field(default_factory=dict)
    behaviour: RegistersBehaviour = field(default_factory=RegistersBehaviour)
    lookups: dict[str, int] = field(default_factory=dict)

    def active(self, iin: str, today: date) -> list[Listing]:
        return [
            Listing(
                register_=e.register_,
                reason=e.reason,
                listed_from=e.listed_from,
                listed_until=e.listed_until,
            )
            for (_, listed), e in sorted(self.entries.items())
            if listed == iin
            and e.listed_from <= today
            and (e.listed_until is None or today <= e.listed_until)
        ]


def _today() -> date:
    return datetime.now(UTC).date()


def registers_router(settings: Settings) -> APIRouter:
    state = RegistersState()
    api = APIRouter(tags=["exclusion registers"])

    def authorize(authorization: str) -> None:
        expected = f"Bearer {settings.exclusion_registry_secret.get_secret_value()}"
        if authorization != expected:
            raise SimulatorError(401, "unauthorized", "bad credentials")

    @api.get("/registers/v1/persons/{iin}")
    async def lookup(iin: IinPath, authorization: str = Header(default="")) -> PersonAnswer:
        """Every active listing of this IIN, in every register."""
        authorize(authorization)
        behaviour = state.behaviour
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        if behaviour.down or behaviour.fail_next > 0:
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
            raise SimulatorError(503, "unavailable", "the register service is unavailable")
        state.lookups[iin] = state.lookups.get(iin, 0) + 1
        return PersonAnswer(
            iin=iin, listings=state.active(iin, _today()), checked_at=datetime.now(UTC)
        )

    # -- admin ------------------------------------------------------------------------------

    @api.get("/admin/registers")
    async def entries(iin: str | None = None) -> list[Entry]:
        return [e for (_, listed), e in sorted(state.entries.items()) if iin in (None, listed)]

    @api.post("/admin/registers/{register}/entries", status_code=201)
    async def add(register: Register, body: EntryIn) -> Entry:
        """List an IIN (again: the entry is replaced). A self-exclusion runs 6 months to 10
        years and cannot be shortened by listing it again."""
        listed_from = body.listed_from or _today()
        if register is Register.SELF_EXCLUSION:
            problem = self_exclusion_term_problem(listed_from, body.listed_until)
            if problem:
                raise SimulatorError(422, "invalid_term", problem)
            current = state.entries.get((register, body.iin))
            if (
                current is not None
                and current.listed_until is not None
                and body.listed_until is not None
                and body.listed_until < current.listed_until
                and current.listed_until >= _today()
            ):
                raise SimulatorError(
                    409, "self_exclusion_irrevocable", "a self-exclusion is never shortened"
                )
        entry = Entry(
            register_=register,
            iin=body.iin,
            reason=body.reason,
            listed_from=listed_from,
            listed_until=body.listed_until,
            added_at=datetime.now(UTC),
        )
        state.entries[(register, body.iin)] = entry
        return entry

    @api.delete("/admin/registers/{register}/entries/{iin}")
    async def remove(register: Register, iin: IinPath) -> Entry:
        """Take an IIN off a register. An active self-exclusion is irrevocable: 409."""
        entry = state.entries.get((register, iin))
        if entry is None:
            raise SimulatorError(404, "not_found", f"{iin} is not on the {register} register")
        still_running = entry.listed_until is None or entry.listed_until >= _today()
        if register is Register.SELF_EXCLUSION and still_running:
            raise SimulatorError(
                409,
                "self_exclusion_irrevocable",
                "a self-exclusion cannot be lifted before it ends",
            )
        del state.entries[(register, iin)]
        return entry

    @api.put("/admin/registers/behaviour")
    async def set_behaviour(body: RegistersBehaviour) -> RegistersBehaviour:
        state.behaviour = body
        return body

    @api.get("/admin/registers/lookups/{iin}")
    async def lookups(iin: IinPath) -> dict[str, int]:
        """How many lookups of this IIN the service answered."""
        return {"lookups": state.lookups.get(iin, 0)}

    return api
