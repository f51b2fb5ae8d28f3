"""Compliance workflows, each started for a payment by its workflow, as a workflow of its own
that outlives it (`workflows/compliance_steps.py`).

`ComplianceReportWorkflow` (`compliance-{kind}-{payment id}`): a paid withdrawal is first
screened for financial monitoring (a report at or over the threshold, or a split series); then
the operation is reported to the unified accounting system (ESU), retried without end while the
ESU does not answer. A report the ESU refuses raises a critical alert (to be filed by hand).

`PayoutDeadlineWorkflow` (`payout-deadline-{withdrawal id}`): winnings are paid within 3
calendar days (Art. 12 p. 4). A day before the deadline a withdrawal still not paid raises a
high alert; at the deadline it is escalated (critical alert, `deadline_escalated_at`). A
withdrawal finished before either step ends the run there.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.compliance import (
        ComplianceActivities,
        ComplianceReportInput,
        ComplianceReportResult,
        DeadlineCheckInput,
        DeadlineInfoInput,
        EsuRefusedInput,
        EsuReportInput,
        PayoutDeadlineInput,
        PayoutDeadlineResult,
        ScreenPayoutInput,
    )
    from domain.compliance.deadlines import WARN_BEFORE
    from workflows.compliance_steps import DB_STEP_RETRY, ESU_RETRY

_DB = timedelta(seconds=30)


@workflow.defn
class ComplianceReportWorkflow:
    @workflow.run
    async def run(self, inp: ComplianceReportInput) -> ComplianceReportResult:
        report_ids: list[str] = []
        if inp.kind == "payout":
            screened = await workflow.execute_activity_method(
                ComplianceActivities.screen_payout,
                ScreenPayoutInput(withdrawal_id=inp.payment_id),
                start_to_close_timeout=_DB,
                retry_policy=DB_STEP_RETRY,
            )
            report_ids = screened.report_ids
        try:
            reported = await workflow.execute_activity_method(
                ComplianceActivities.report_to_esu,
                EsuReportInput(kind=inp.kind, payment_id=inp.payment_id),
                start_to_close_timeout=_DB,
                retry_policy=ESU_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == "EsuRejected"):
                raise
            code = str(cause.details[0]) if cause.details else "refused"
            await workflow.execute_activity_method(
                ComplianceActivities.esu_report_refused,
                EsuRefusedInput(kind=inp.kind, payment_id=inp.payment_id, code=code),
                start_to_close_timeout=_DB,
                retry_policy=DB_STEP_RETRY,
            )
            return ComplianceReportResult(esu="refused", report_ids=report_ids)
        return ComplianceReportResult(
            esu=reported.outcome, receipt_id=reported.receipt_id, report_ids=report_ids
        )


@workflow.defn
class PayoutDeadlineWorkflow:
    @workflow.run
    async def run(self, inp: PayoutDeadlineInput) -> PayoutDeadlineResult:
        info = await workflow.execute_activity_method(
            ComplianceActivities.payout_deadline_info,
            DeadlineInfoInput(withdrawal_id=inp.withdrawal_id),
            start_to_close_timeout=_DB,
            retry_policy=DB_STEP_RETRY,
        )
        if not info.found or info.deadline is None:
            return PayoutDeadlineResult(outcome="unknown", status=info.status)
        if not info.open:
            return PayoutDeadlineResult(outcome="closed", status=info.status)
        steps = (("warn", info.deadline - WARN_BEFORE), ("escalate", info.deadline))
        status = info.status
        for stage, at in steps:
            wait = at - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait)
            checked = await workflow.execute_activity_method(
                ComplianceActivities.check_payout_deadline,
                DeadlineCheckInput(withdrawal_id=inp.withdrawal_id, stage=stage, at=workflow.now()),
                start_to_close_timeout=_DB,
                retry_policy=DB_STEP_RETRY,
            )
            status = checked.status
            if not checked.open:
                return PayoutDeadlineResult(outcome="closed", status=status)
        return PayoutDeadlineResult(outcome="escalated", status=status)
