"""DailySnapshotWorkflow: each account's balance at the end of the previous Almaty day, taken
every night by a Temporal Schedule (`ensure_snapshot_schedule`, at worker start), so that the
finance team reads yesterday's balances without summing the ledger. A day's snapshot is taken
again on demand if a posting dated back made it stale; a closed period's last day is final.
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

with workflow.unsafe.imports_passed_through():
    from activities.finance import FinanceActivities, TakeSnapshotInput
    from domain.recon.days import BUSINESS_TZ_NAME, previous_business_day

SNAPSHOT_SCHEDULE_ID = "finance-daily-snapshot"


class DailySnapshotInput(BaseModel):
    day: date | None = None  # None: the Almaty day before the run's start


class DailySnapshotResult(BaseModel):
    day: date
    accounts: int
    taken: bool


@workflow.defn
class DailySnapshotWorkflow:
    @workflow.run
    async def run(self, inp: DailySnapshotInput) -> DailySnapshotResult:
        day = inp.day or previous_business_day(workflow.now())
        result = await workflow.execute_activity_method(
            FinanceActivities.take_balance_snapshot,
            TakeSnapshotInput(day=day, occurred_at=workflow.now()),
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
        return DailySnapshotResult(day=day, accounts=result.accounts, taken=result.taken)


def snapshot_schedule(*, task_queue: str, hour: int = 0, minute: int = 30) -> Schedule:
    """Every night at hour:minute Asia/Almaty, the previous day's snapshot."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DailySnapshotWorkflow.run,
            DailySnapshotInput(),
            id="finance-snapshot",
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


async def ensure_snapshot_schedule(client: Client, *, task_queue: str) -> str:
    """Create the nightly schedule, or bring an existing one to this definition."""
    schedule = snapshot_schedule(task_queue=task_queue)
    try:
        await client.create_schedule(SNAPSHOT_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await client.get_schedule_handle(SNAPSHOT_SCHEDULE_ID).update(replace)
    return SNAPSHOT_SCHEDULE_ID
