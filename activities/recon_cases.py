"""Case activities: the database steps of a case resolution that gives money back through a
provider (CaseMoneyBackWorkflow): post or release the hold of a return to the sender, and
record how the refund or return ended on the case. Both are idempotent on the case id."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import ledger as ledger_store
from db import recon_cases as case_store
from domain.ledger import PendingResolution
from domain.recon.cases import return_hold_key
from domain.recon.postings import case_key


class SettleReturnInput(BaseModel):
    case_id: int
    payout_reference: str
    action: Literal["post", "void"]


class SettleReturnResult(BaseModel):
    transaction_id: int


class FinishCaseInput(BaseModel):
    case_id: int
    succeeded: bool
    reason: str | None = None
    occurred_at: datetime


class FinishCaseResult(BaseModel):
    status: str | None  # the case's status afterwards (None: no such case)


def return_resolution(*, case_id: int, payout_reference: str, action: str) -> PendingResolution:
    """The bank paid the money back (post) or did not (void: it waits in the difference account
    again). Paid, it is a payout of the bank like a withdrawal's (`withdrawal_paid`, under the
    payout's reference): the statement's outgoing line meets it as one."""
    return PendingResolution(
        key=case_key(case_id, f"return:{action}"),
        kind="withdrawal_paid" if action == "post" else "recon_case_return_released",
        payment_id=payout_reference,
        pending_key=return_hold_key(case_id),
        action="post" if action == "post" else "void",
    )


class CaseActivities:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def settle_return_hold(self, inp: SettleReturnInput) -> SettleReturnResult:
        try:
            posted = await ledger_store.resolve(
                self._sessions,
                return_resolution(
                    case_id=inp.case_id, payout_reference=inp.payout_reference, action=inp.action
                ),
            )
        except ledger_store.PendingAlreadyResolved as exc:
            raise ApplicationError(
                f"the return of case {inp.case_id} was already settled the other way",
                non_retryable=True,
                type="HoldAlreadyResolved",
            ) from exc
        return SettleReturnResult(transaction_id=posted.id)

    @activity.defn
    async def finish_case(self, inp: FinishCaseInput) -> FinishCaseResult:
        async with self._sessions.begin() as session:
            case = await case_store.finish_money_back(
                session,
                case_id=inp.case_id,
                succeeded=inp.succeeded,
                reason=inp.reason,
                now=inp.occurred_at,
            )
        return FinishCaseResult(status=None if case is None else case.status)
