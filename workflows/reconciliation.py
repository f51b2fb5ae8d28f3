"""ReconciliationWorkflow: one provider's business day matched with our records and settled.

One workflow id per provider and day (`recon-{provider}-{date}`): an on-demand run and the
schedule's run of the same day never overlap. The steps are activities, each idempotent:
1. the report: the uploaded one named in the input, or fetched from the provider (retried
   with backoff while the provider has not published it yet) and stored once per content hash;
2. matching: every line against the day's records, cases opened, counts kept, once per report;
3. settlement: the day's earlier runs superseded (their settlement reversed), the day's
   clearing swept to the operator's bank account, fee expense and the difference account;
4. chargebacks the report showed (each a `chargeback` case) charged to their players: the
   wallet as far as it covers, a receivable for the rest (once per report line; one that
   cannot be charged stays open for an operator).
Running it again for the same report changes nothing; for a corrected report (another hash) it
supersedes the earlier run, with an audit trail (`recon_supersessions`).

ScheduledReconciliationWorkflow is what the daily Temporal Schedule starts (a schedule's action
has fixed arguments): it names yesterday in Asia/Almaty and runs the day's workflow as a child
under the day's id. `ensure_recon_schedules` creates or updates the schedules at worker start.
"""

from datetime import date, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.recon import (
        ChargeChargebacksInput,
        LoadReportInput,
        MatchReportInput,
        OutcomeTotals,
        ReconActivities,
        SettleRunInput,
    )
    from domain.recon.days import BUSINESS_TZ_NAME, previous_business_day

# Failures no retry helps: an unreadable report, another provider's or day's, none to fetch.
_FINAL = ["ReportInvalid", "ReportMismatch", "NoReportSource", "NotFound", "InvalidState"]


def recon_workflow_id(provider: str, business_date: date) -> str:
    return f"recon-{provider}-{business_date.isoformat()}"


def recon_schedule_id(provider: str) -> str:
    return f"recon-daily-{provider}"


class ReconciliationInput(BaseModel):
    provider: str
    business_date: date
    report_id: int | None = None  # an uploaded report; None: fetch it from the provider
    requested_by: str = "schedule"
    fetch_give_up_seconds: float = 12 * 3600.0  # a report not published by then fails the run


class ReconciliationResult(BaseModel):
    run_id: int
    report_id: int
    report_hash: str
    status: str  # completed | superseded (a later report of the day won before this ended)
    already_reconciled: bool  # this very report was reconciled before: nothing changed
    outcomes: dict[str, OutcomeTotals]
    cases_open: int
    settlement_key: str | None
    clearing_minor: int
    settled_minor: int
    fee_delta_minor: int
    difference_minor: int
    superseded_run_ids: list[int]
    chargebacks_charged: list[int] = []  # chargeback cases charged to their players


# Step 4 came after the first histories were recorded: runs started before it skip it.
CHARGE_CHARGEBACKS_PATCH = "recon-charge-reported-chargebacks"


@workflow.defn
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, inp: ReconciliationInput) -> ReconciliationResult:
        report = await workflow.execute_activity_method(
            ReconActivities.load_recon_report,
            LoadReportInput(
                provider=inp.provider,
                business_date=inp.business_date,
                report_id=inp.report_id,
                received_by=inp.requested_by,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=timedelta(seconds=inp.fetch_give_up_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=30),
                maximum_interval=timedelta(minutes=30),
                non_retryable_error_types=_FINAL,
            ),
        )
        matched = await workflow.execute_activity_method(
            ReconActivities.match_recon_report,
            MatchReportInput(
                report_id=report.report_id,
                workflow_id=workflow.info().workflow_id,
                requested_by=inp.requested_by,
            ),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=10, non_retryable_error_types=_FINAL),
        )
        settled = await workflow.execute_activity_method(
            ReconActivities.settle_recon_run,
            SettleRunInput(run_id=matched.run_id),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=10, non_retryable_error_types=_FINAL),
        )
        charged: list[int] = []
        chargebacks = matched.outcomes.get("chargeback")
        if (
            settled.status == "completed"
            and chargebacks is not None
            and chargebacks.count > 0
            and workflow.patched(CHARGE_CHARGEBACKS_PATCH)
        ):
            charged = (
                await workflow.execute_activity_method(
                    ReconActivities.charge_reported_chargebacks,
                    ChargeChargebacksInput(run_id=matched.run_id),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(maximum_attempts=10, non_retryable_error_types=_FINAL),
                )
            ).charged_case_ids
        return ReconciliationResult(
            run_id=matched.run_id,
            report_id=report.report_id,
            report_hash=report.report_hash,
            status=settled.status,
            already_reconciled=matched.already,
            outcomes=matched.outcomes,
            cases_open=max(matched.cases_open - len(charged), 0),
            settlement_key=settled.settlement_key,
            clearing_minor=settled.clearing_minor,
            settled_minor=settled.settled_minor,
            fee_delta_minor=settled.fee_delta_minor,
            difference_minor=settled.difference_minor,
            superseded_run_ids=settled.superseded_run_ids,
            chargebacks_charged=charged,
        )


class ScheduledReconciliationInput(BaseModel):
    provider: str
    days_back: int = 1  # 1: yesterday (Asia/Almaty) when the schedule fires


class ScheduledReconciliationResult(BaseModel):
    business_date: date
    workflow_id: str
    outcome: str  # reconciled | already_running
    result: ReconciliationResult | None = None


@workflow.defn
class ScheduledReconciliationWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledReconciliationInput) -> ScheduledReconciliationResult:
        day = previous_business_day(workflow.now(), days_back=inp.days_back)
        child_id = recon_workflow_id(inp.provider, day)
        try:
            result = await workflow.execute_child_workflow(
                ReconciliationWorkflow.run,
                ReconciliationInput(provider=inp.provider, business_date=day),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:  # an operator's run of the same day is under way
            return ScheduledReconciliationResult(
                business_date=day, workflow_id=child_id, outcome="already_running"
            )
        return ScheduledReconciliationResult(
            business_date=day, workflow_id=child_id, outcome="reconciled", result=result
        )


def recon_schedule(
    provider: str, *, task_queue: str, hour: int, minute: int, days_back: int = 1
) -> Schedule:
    """Every day at hour:minute Asia/Almaty, reconcile the provider's previous day; a run still
    going when the next is due is not doubled."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledReconciliationWorkflow.run,
            ScheduledReconciliationInput(provider=provider, days_back=days_back),
            id=f"recon-scheduled-{provider}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
            ],
            time_zone_name=BUSINESS_TZ_NAME,
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=12)
        ),
    )


async def ensure_recon_schedules(
    client: Client,
    *,
    task_queue: str,
    providers: list[str],
    hour: int,
    minute: int,
    days_back: int = 1,
) -> list[str]:
    """Create each provider's daily schedule, or bring an existing one to this definition
    (any worker may call this at start, as often as it starts). Returns the schedule ids."""
    ids = []
    for provider in providers:
        schedule = recon_schedule(
            provider, task_queue=task_queue, hour=hour, minute=minute, days_back=days_back
        )
        schedule_id = recon_schedule_id(provider)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
        ids.append(schedule_id)
    return ids
