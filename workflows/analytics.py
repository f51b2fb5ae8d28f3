"""RollupFoldWorkflow: the analytics rollups' pending deltas folded on the primary every
minute by a Temporal Schedule (`ensure_fold_schedule`, at worker start). Readers are exact
without a fold (they add the pending deltas), but the deltas would pile up, and the closed
days' kept percentiles are (re)computed by the fold (db/rollups.py), where a read replica
cannot write. Overlapping runs are skipped; a missed one is not caught up (the next folds all).
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.analytics import AnalyticsActivities

FOLD_SCHEDULE_ID = "analytics-rollup-fold"
FOLD_EVERY = timedelta(minutes=1)


class RollupFoldResult(BaseModel):
    deltas: int


@workflow.defn
class RollupFoldWorkflow:
    @workflow.run
    async def run(self) -> RollupFoldResult:
        result = await workflow.execute_activity_method(
            AnalyticsActivities.fold_rollups,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(seconds=30)),
        )
        return RollupFoldResult(deltas=result.deltas)


def fold_schedule(*, task_queue: str, every: timedelta = FOLD_EVERY) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RollupFoldWorkflow.run,
            id="analytics-rollup-fold",
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=10),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )


async def ensure_fold_schedule(
    client: Client, *, task_queue: str, every: timedelta = FOLD_EVERY
) -> str:
    """Create the schedule, or bring an existing one to this definition."""
    schedule = fold_schedule(task_queue=task_queue, every=every)
    try:
        await client.create_schedule(FOLD_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await client.get_schedule_handle(FOLD_SCHEDULE_ID).update(replace)
    return FOLD_SCHEDULE_ID
