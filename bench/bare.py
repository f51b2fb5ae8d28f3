"""A bare one-activity workflow: the yardstick `python -m bench.payments` compares deposits with.

`python -m bench.bare --temporal-address HOST:PORT --task-queue Q` serves it on its own worker
process and task queue (SDK default worker options) until SIGTERM or SIGINT; it prints
`bare worker polling <queue>` once it polls. The benchmark starts workflows on that queue with
the same count and concurrency as the deposits, so the difference is the payment path's own
cost: HTTP API, database writes, provider calls and the deposit workflow's extra steps.
"""

import argparse
import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


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
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client, task_queue=task_queue, workflows=[BareWorkflow], activities=[bare_step]
    ):
        print(f"bare worker polling {task_queue}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--temporal-address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.temporal_address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
