"""A bare one-activity workflow: the yardstick `python -m bench.payments` compares deposits with.

`python -m bench.bare --temporal-address HOST:PORT --task-queue Q` serves it on its own worker
process and task queue until SIGTERM or SIGINT; it prints `bare worker polling <queue>` once it
polls. The benchmark starts workflows on that queue with the same count and concurrency as the
deposits, so the difference is the payment path's own cost: HTTP API, database writes, provider
calls and the deposit workflow's extra steps, not a cheaper way of running a workflow.

So the worker runs the way the deposit worker (`worker.py`) does:

- the sandbox: `Worker(..., workflow_runner=worker.workflow_runner())`, the same sandboxed
  runner with the same passthrough modules, so every run pays the same per-run sandbox setup
  and re-import of its workflow's module. That module is imported as `bench.bare`, not as
  `__main__`, and its bytecode is written first, as `worker.precompile_workflows` does for
  `workflows/` (with PYTHONDONTWRITEBYTECODE set, each sandboxed run would otherwise compile the
  source again, a cost the deposit worker does not pay). Its top level imports only what a
  workflow needs: the worker's modules are imported by `serve`, outside the sandbox;
- the activity kind: a regular activity (an activity task through the server, like the
  deposit's provider call), `async def`, so it runs on the worker's event loop like the
  deposit activities, not in a thread pool, and not a local activity;
- the event loop: `worker.run_on_event_loop` (uvloop when installed, as for the deposit worker);
- the payload converter: the client comes from `worker.connect_temporal`, so payloads go through
  the same pydantic converter (and the AES-GCM codec when `PAY_CODEC_ENABLED`, which
  `bench.payments` sets to the value its own client uses).

Left out on purpose: the deposit worker's `LogContextInterceptor` and logging set-up (logging
is part of the payment path's cost), and its database pool and provider HTTP client (the bare
activity does no I/O). Other `Worker` options are the SDK defaults in both.
"""

import argparse
import asyncio
import compileall
import signal
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def bare_step(value: str) -> str:
    return value


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(
            bare_step, value, start_to_close_timeout=timedelta(seconds=30)
        )


async def serve(address: str, namespace: str, task_queue: str) -> None:
    from temporalio.worker import Worker

    import bench.bare  # this module under its own name: the sandbox re-imports it per run
    from config import get_settings
    from worker import connect_temporal, workflow_runner

    settings = get_settings().model_copy(
        update={"temporal_address": address, "temporal_namespace": namespace}
    )
    if bench.bare.__file__ is not None:
        compileall.compile_file(bench.bare.__file__, quiet=2)
    client = await connect_temporal(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[bench.bare.BareWorkflow],
        activities=[bench.bare.bare_step],
        workflow_runner=workflow_runner(),
    ):
        print(f"bare worker polling {task_queue}", flush=True)
        await stop.wait()


def main() -> None:
    from worker import run_on_event_loop

    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--temporal-address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    run_on_event_loop(lambda: serve(args.temporal_address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
