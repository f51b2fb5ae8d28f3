"""Compliance activities (README, "Compliance"). Each is safe to run again: keys come from the
payment id.

- `report_to_esu`: one deposit, withdrawal or payout reported to the unified accounting system
  (ESU), deduplicated by the ESU on our operation id and recorded once here with its receipt;
- `screen_payout`: the financial-monitoring reports a paid withdrawal makes (at or over the
  threshold alone, or completing a split series);
- `payout_deadline_info` and `check_payout_deadline`: the payout deadline's alerts;
- `refuse_credit_funds`: a deposit the provider reports as paid with credit money is not
  credited: it fails with `credit_funds_not_allowed`, a case is opened to refund it, and the
  refusal is recorded and alerted;
- `start_compliance_workflow`: a payment's workflow starts its compliance workflows through
  this activity (with the worker's client) rather than as child workflows: they run on after
  the payment's workflow ends, and nothing ties the two (a child abandoned by its finished
  parent also keeps the time-skipping test server from skipping time).
"""

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from db import compliance as store
from db import deposits as deposit_store
from db import late_payments, monitoring
from db.models import Deposit, Player
from domain.compliance import credit
from domain.compliance.esu import EsuRejected, EsuUnavailable, OperationKind, UnifiedAccounting
from domain.compliance.monitoring import Thresholds

logger = logging.getLogger("activities.compliance")


class ComplianceReportInput(BaseModel):
    kind: OperationKind
    payment_id: str


class ComplianceReportResult(BaseModel):
    esu: str  # reported | already_reported | not_reportable | refused
    receipt_id: str | None = None
    report_ids: list[str] = []


class PayoutDeadlineInput(BaseModel):
    withdrawal_id: str


class PayoutDeadlineResult(BaseModel):
    # closed: paid (or otherwise finished) before the deadline's next step; escalated: still
    # not paid at the deadline; unknown: no such withdrawal
    outcome: str
    status: str | None = None


def compliance_report_workflow_id(kind: OperationKind, payment_id: str) -> str:
    return f"compliance-{kind}-{payment_id}"


def payout_deadline_workflow_id(withdrawal_id: str) -> str:
    return f"payout-deadline-{withdrawal_id}"


class StartComplianceInput(BaseModel):
    workflow: Literal["report", "payout_deadline"]
    payment_id: str
    kind: OperationKind | None = None  # for a report


class StartComplianceResult(BaseModel):
    started: bool  # False: it ran (or runs) already


class EsuReportInput(BaseModel):
    kind: OperationKind
    payment_id: str


class EsuReportResult(BaseModel):
    outcome: Literal["reported", "already_reported", "not_reportable"]
    receipt_id: str | None = None


class EsuRefusedInput(BaseModel):
    kind: OperationKind
    payment_id: str
    code: str


class ScreenPayoutInput(BaseModel):
    withdrawal_id: str


class ScreenPayoutResult(BaseModel):
    report_ids: list[str]


class DeadlineInfoInput(BaseModel):
    withdrawal_id: str


class DeadlineInfo(BaseModel):
    found: bool
    deadline: datetime | None = None
    status: str | None = None
    open: bool = False


class DeadlineCheckInput(BaseModel):
    withdrawal_id: str
    stage: Literal["warn", "escalate"]
    at: datetime


class DeadlineCheckResult(BaseModel):
    open: bool
    status: str | None = None
    raised: bool = False


class CreditFundsInput(BaseModel):
    deposit_id: str
    provider: str
    amount_minor: int  # what the provider confirms it received
    currency: str
    funding: dict[str, Any]


class CreditFundsResult(BaseModel):
    case_id: int
    resolution: str


class ComplianceActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        esu: UnifiedAccounting,
        thresholds: Thresholds,
        temporal: Client | None = None,
        task_queue: str = "payments",
    ) -> None:
        self._sessions = sessions
        self._esu = esu
        self._thresholds = thresholds
        self._temporal = temporal
        self._task_queue = task_queue

    @activity.defn
    async def start_compliance_workflow(self, inp: StartComplianceInput) -> StartComplianceResult:
        """Start the payment's compliance workflow once (its id is the payment's)."""
        if self._temporal is None:
            raise ApplicationError("no Temporal client", non_retryable=True, type="InvalidInput")
        workflow_type: str
        arg: BaseModel
        if inp.workflow == "report":
            if inp.kind is None:
                raise ApplicationError(
                    "a report needs its kind", non_retryable=True, type="InvalidInput"
                )
            workflow_type = "ComplianceReportWorkflow"
            arg = ComplianceReportInput(kind=inp.kind, payment_id=inp.payment_id)
            workflow_id = compliance_report_workflow_id(inp.kind, inp.payment_id)
        else:
            workflow_type = "PayoutDeadlineWorkflow"
            arg = PayoutDeadlineInput(withdrawal_id=inp.payment_id)
            workflow_id = payout_deadline_workflow_id(inp.payment_id)
        try:
            await self._temporal.start_workflow(
                workflow_type,
                arg,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:  # it ran already: once is enough
            return StartComplianceResult(started=False)
        return StartComplianceResult(started=True)

    @activity.defn
    async def report_to_esu(self, inp: EsuReportInput) -> EsuReportResult:
        """Report once. The ESU not answering is retried (by the workflow, without end); a
        refusal (malformed, another operation under our id) is not, and is alerted."""
        async with self._sessions.begin() as session:
            if await store.esu_reported(session, kind=inp.kind, payment_id=inp.payment_id):
                return EsuReportResult(outcome="already_reported")
            subject = await store.esu_subject(session, kind=inp.kind, payment_id=inp.payment_id)
        if subject is None:
            return EsuReportResult(outcome="not_reportable")
        try:
            receipt = await self._esu.report(subject.record)
        except EsuUnavailable as exc:
            raise ApplicationError(f"the ESU did not answer: {exc}", type="EsuUnavailable") from exc
        except EsuRejected as exc:
            raise ApplicationError(
                f"the ESU refused the report: {exc}",
                exc.code,
                non_retryable=True,
                type="EsuRejected",
            ) from exc
        async with self._sessions.begin() as session:
            await store.record_esu_receipt(session, subject=subject, receipt=receipt)
        return EsuReportResult(outcome="reported", receipt_id=receipt.receipt_id)

    @activity.defn
    async def esu_report_refused(self, inp: EsuRefusedInput) -> bool:
        async with self._sessions.begin() as session:
            return await monitoring.raise_alert(
                session,
                dedupe_key=f"esu_report_refused:{inp.kind}:{inp.payment_id}",
                kind="esu_report_refused",
                severity="critical",
                subject=inp.payment_id,
                message=f"The unified accounting system (ESU) refused the {inp.kind} report of "
                f"{inp.payment_id} ({inp.code}): it must be reported by hand",
                details={"payment_id": inp.payment_id, "kind": inp.kind, "code": inp.code},
            )

    @activity.defn
    async def screen_payout(self, inp: ScreenPayoutInput) -> ScreenPayoutResult:
        async with self._sessions.begin() as session:
            reports = await store.screen_payout(
                session, withdrawal_id=inp.withdrawal_id, thresholds=self._thresholds
            )
        return ScreenPayoutResult(report_ids=[r.id for r in reports])

    @activity.defn
    async def payout_deadline_info(self, inp: DeadlineInfoInput) -> DeadlineInfo:
        async with self._sessions.begin() as session:
            found = await store.payout_deadline(session, withdrawal_id=inp.withdrawal_id)
        if found is None:
            return DeadlineInfo(found=False)
        return DeadlineInfo(
            found=True, deadline=found.deadline, status=found.status, open=found.open
        )

    @activity.defn
    async def check_payout_deadline(self, inp: DeadlineCheckInput) -> DeadlineCheckResult:
        async with self._sessions.begin() as session:
            checked = await store.check_deadline(
                session, withdrawal_id=inp.withdrawal_id, stage=inp.stage, at=inp.at
            )
        if checked is None:
            return DeadlineCheckResult(open=False)
        return DeadlineCheckResult(open=checked.open, status=checked.status, raised=checked.raised)

    @activity.defn
    async def refuse_credit_funds(self, inp: CreditFundsInput) -> CreditFundsResult:
        """The deposit's money came from credit: open the case to refund it (policy `refund`),
        keep how it was funded, record the refusal and alert. The deposit's status is the
        workflow's to record (failed, `credit_funds_not_allowed`)."""
        async with self._sessions.begin() as session:
            deposit = await session.get(Deposit, inp.deposit_id)
            if deposit is None:
                raise ApplicationError(
                    f"deposit {inp.deposit_id} not found", non_retryable=True, type="NotFound"
                )
            player = await session.get_one(Player, deposit.player_id)
            case_id, resolution, _, created = await late_payments.open_case(
                session,
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                amount_minor=inp.amount_minor,
                currency=inp.currency,
                deposit_status=deposit.status,
                policy="refund",
            )
            await deposit_store.keep_funding(
                session, deposit_id=inp.deposit_id, funding=inp.funding
            )
            if created:
                label = credit.funding_label(inp.funding)
                await store.record_refusal(
                    session,
                    stage="deposit",
                    code=credit.REFUSAL_CODE,
                    detail=f"{inp.provider} reports the payment as funded by credit ({label}): "
                    "not credited, refunded",
                    iin=player.iin,
                    person_id=player.person_id,
                    player_id=player.id,
                    payment_id=inp.deposit_id,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                )
                await monitoring.raise_alert(
                    session,
                    dedupe_key=f"credit_funds:{inp.deposit_id}:{inp.provider}",
                    kind="credit_funds_refused",
                    severity="high",
                    subject=player.id,
                    message=f"{inp.provider} reports deposit {inp.deposit_id} "
                    f"({inp.amount_minor} {inp.currency}) as paid with credit ({label}): "
                    "it is not credited and is refunded at the provider",
                    details={
                        "payment_id": inp.deposit_id,
                        "provider": inp.provider,
                        "case_id": case_id,
                        "funding": inp.funding,
                    },
                )
        return CreditFundsResult(case_id=case_id, resolution=resolution)
