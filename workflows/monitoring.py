"""MonitoringWorkflow: run the monitoring checks, sleep, repeat; one instance per namespace.

A durable timer rather than cron: the worker starts it (`start_monitoring`, workflow id
`monitoring`, an already running one is kept), a failed run is logged and the next one comes at
the next tick, and the history is kept short with continue-as-new.
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.monitoring import MonitoringActivities, MonitoringCheckInput

MONITORING_WORKFLOW_ID = "monitoring"


class MonitoringInput(BaseModel):
    interval_seconds: float = 60.0
    runs_per_history: int = 200
    """Continue as new after this many runs, so the event history stays small."""
    runs: int = 0
    """Runs before this history (carried over by continue-as-new)."""


@workflow.defn
class MonitoringWorkflow:
    def __init__(self) -> None:
        self._runs = 0
        self._failures = 0
        self._last_raised: list[str] = []

    @workflow.query
    def runs(self) -> int:
        return self._runs

    @workflow.query
    def last_raised(self) -> list[str]:
        return self._last_raised

    @workflow.run
    async def run(self, inp: MonitoringInput) -> None:
        self._runs = inp.runs
        for _ in range(inp.runs_per_history):
            try:
                result = await workflow.execute_activity_method(
                    MonitoringActivities.run_monitoring_checks,
                    MonitoringCheckInput(now=workflow.now()),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                self._last_raised = result.raised
            except ActivityError as err:  # the next tick tries again
                self._failures += 1
                workflow.logger.warning("monitoring run failed: %s", err)
            self._runs += 1
            await workflow.sleep(timedelta(seconds=inp.interval_seconds))
        workflow.continue_as_new(inp.model_copy(update={"runs": self._runs}))


async def start_monitoring(client: Client, *, task_queue: str, interval_seconds: float) -> None:
    """Start the monitoring workflow unless it is already running (any worker may call this)."""
    await client.start_workflow(
        MonitoringWorkflow.run,
        MonitoringInput(interval_seconds=interval_seconds),
        id=MONITORING_WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
