"""The compliance checks of a request, before anything is created (README, "Compliance").

- Registration: under 21 (by the IIN) and the exclusion registers. A register that does not
  answer does not stop a registration: nothing moves yet, and every deposit checks again.
- Deposit: credit money (a credit card's BIN), under 21, the registers (fail closed:
  `exclusion_check_unavailable` when they do not answer, unless `PAY_EXCLUSION_FAIL_CLOSED` is
  off), then the ESU's authorization (`esu_refused`, `esu_monthly_limit_exceeded`; fail closed
  with `esu_unavailable`, unless `PAY_ESU_FAIL_CLOSED` is off).
- Withdrawal: under 21 and the registers that bar payouts (debtors, civil servants, military;
  a self-excluded person may take back their balance). A register that does not answer does
  not hold back a withdrawal of an existing balance.

Every refusal has its own code (problem+json) and is recorded in `compliance_refusals`, in its
own transaction (the request's own is rolled back by the refusal).
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from api.errors import Problem
from api.state import AppState
from db import compliance as compliance_store
from db.models import Player
from domain.compliance import credit
from domain.compliance.esu import EsuRejected, EsuUnavailable, monthly_limit_left
from domain.compliance.exclusions import (
    Exclusion,
    RegistryUnavailable,
    Stage,
    age_exclusion,
    register_exclusion,
)
from domain.iin import InvalidIIN

logger = logging.getLogger("api.compliance")


@dataclass(frozen=True)
class Subject:
    """Who a request is about, and the payment it would create."""

    stage: Stage
    iin: str
    player: Player | None = None
    payment_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


async def refused(
    state: AppState, subject: Subject, problem: Problem, *, register: str | None = None
) -> Problem:
    """Record the refusal and hand back the problem to raise."""
    player = subject.player
    try:
        async with state.sessions.begin() as session:
            await compliance_store.record_refusal(
                session,
                stage=subject.stage,
                code=problem.code,
                detail=problem.detail,
                register=register,
                iin=subject.iin,
                person_id=player.person_id if player else None,
                player_id=player.id if player else None,
                payment_id=subject.payment_id,
                amount_minor=subject.amount_minor,
                currency=subject.currency,
            )
    except SQLAlchemyError:  # the refusal stands; its record is best effort
        logger.exception("could not record the refusal %s", problem.code)
    return problem


async def _refuse(state: AppState, subject: Subject, exclusion: Exclusion) -> Problem:
    problem = Problem(422, exclusion.code, exclusion.detail)
    register = exclusion.register.value if exclusion.register else None
    return await refused(state, subject, problem, register=register)


async def _registers(state: AppState, subject: Subject) -> Exclusion | None:
    """The registers' verdict; `RegistryUnavailable` when they do not answer."""
    answer = await state.compliance.registry.check(subject.iin)
    return register_exclusion(answer, stage=subject.stage)


def _age(subject: Subject, now: datetime) -> Exclusion | None:
    try:
        return age_exclusion(subject.iin, today=now.date())
    except InvalidIIN:  # a stored IIN is valid; a new one was checked by the caller
        return None


async def check_registration(state: AppState, *, iin: str) -> None:
    subject = Subject(stage="registration", iin=iin)
    try:
        exclusion = await _registers(state, subject)
    except RegistryUnavailable as exc:
        logger.warning("exclusion registers did not answer at registration: %s", exc)
        return
    if exclusion is not None:
        raise await _refuse(state, subject, exclusion)


async def check_deposit(
    state: AppState,
    *,
    player: Player,
    deposit_id: str,
    amount_minor: int,
    currency: str,
    card_bin: str | None,
    person_month_minor: int,
) -> None:
    """Every rule a deposit must pass before it is created; raises the refusal.
    `person_month_minor`: what the person deposited this month here (for the ESU's limit)."""
    settings = state.settings
    subject = Subject("deposit", player.iin, player, deposit_id, amount_minor, currency)
    if card_bin is not None and credit.card_is_credit(card_bin):
        problem = Problem(
            422,
            credit.REFUSAL_CODE,
            "This card is a credit card: gambling deposits may not be funded with credit",
        )
        raise await refused(state, subject, problem)
    now = datetime.now(UTC)
    exclusion = _age(subject, now)
    if exclusion is None:
        try:
            exclusion = await _registers(state, subject)
        except RegistryUnavailable as exc:
            logger.warning("exclusion registers did not answer: %s", exc)
            if settings.exclusion_fail_closed:
                problem = Problem(
                    503,
                    "exclusion_check_unavailable",
                    "The exclusion registers did not answer, so the deposit cannot be checked "
                    "against them; retry later with the same Idempotency-Key",
                )
                raise await refused(state, subject, problem) from exc
    if exclusion is not None:
        raise await _refuse(state, subject, exclusion)
    await _esu(state, subject, person_month_minor=person_month_minor)


async def _esu(state: AppState, subject: Subject, *, person_month_minor: int) -> None:
    assert subject.amount_minor is not None
    assert subject.currency is not None
    assert subject.payment_id is not None
    try:
        answer = await state.compliance.esu.authorize(
            iin=subject.iin,
            amount_minor=subject.amount_minor,
            currency=subject.currency,
            payment_id=subject.payment_id,
        )
    except (EsuUnavailable, EsuRejected) as exc:
        logger.warning("the ESU did not authorize: %s", exc)
        if not state.settings.esu_fail_closed:
            return
        problem = Problem(
            503,
            "esu_unavailable",
            "The unified accounting system (ESU) did not answer; retry later with the same "
            "Idempotency-Key",
        )
        raise await refused(state, subject, problem) from exc
    if not answer.allowed:
        problem = Problem(
            422,
            "esu_refused",
            f"The unified accounting system (ESU) refused this person's payment "
            f"({answer.reason or 'no reason given'})",
        )
        raise await refused(state, subject, problem)
    left = monthly_limit_left(answer, ours_this_month=person_month_minor)
    if left is not None and subject.amount_minor > left:
        problem = Problem(
            422,
            "esu_monthly_limit_exceeded",
            f"The deposit would pass the person's monthly limit in the unified accounting "
            f"system of {answer.monthly_limit_minor} ({left} left this month)",
        )
        raise await refused(state, subject, problem)


async def check_withdrawal(
    state: AppState, *, player: Player, amount_minor: int, currency: str
) -> None:
    subject = Subject("withdrawal", player.iin, player, None, amount_minor, currency)
    exclusion = _age(subject, datetime.now(UTC))
    if exclusion is None:
        try:
            exclusion = await _registers(state, subject)
        except RegistryUnavailable as exc:  # a balance the player holds is paid out regardless
            logger.warning("exclusion registers did not answer at a withdrawal: %s", exc)
            return
    if exclusion is not None:
        raise await _refuse(state, subject, exclusion)
