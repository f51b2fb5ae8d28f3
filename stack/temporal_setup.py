"""`python -m stack.temporal_setup`: prepare an external Temporal cluster for this project.

A one-shot job (docker-compose.yml runs it before the workers and the API): registers the
namespace if it is missing and adds this project's custom search attributes
(`workflows.search_attributes.ALL`). Running it again changes nothing.
"""

import argparse
import asyncio
import logging
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from config import Settings, get_settings
from config.logging import configure_logging
from config.temporal_tls import temporal_tls
from stack.search_attributes import ensure_search_attributes

logger = logging.getLogger("stack.temporal_setup")


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Registers `namespace` unless it exists; True when it was created now."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(
                    seconds=int(retention.total_seconds())
                ),
            )
        )
    except RPCError as error:
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def _connect(settings: Settings, attempts: int, delay: float) -> Client:
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.temporal_target,
                namespace=settings.temporal_namespace,
                tls=temporal_tls(settings),
            )
        except RuntimeError as exc:  # the core SDK's connection errors
            if attempt == attempts:
                raise
            logger.info("Temporal at %s not reachable yet: %s", settings.temporal_target, exc)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def setup(
    settings: Settings,
    *,
    retention: timedelta = timedelta(days=30),
    attempts: int = 30,
    delay: float = 2.0,
) -> list[str]:
    """Namespace, then search attributes; returns the search attributes added."""
    client = await _connect(settings, attempts, delay)
    namespace = settings.temporal_namespace
    if await ensure_namespace(client, namespace, retention):
        logger.info("namespace %s registered (retention %s)", namespace, retention)
    # A new namespace reaches every frontend's cache within seconds; until then it is NOT_FOUND.
    added: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            added = await ensure_search_attributes(client, namespace)
            break
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND or attempt == attempts:
                raise
            await asyncio.sleep(delay)
    logger.info("search attributes on %s: added %s", namespace, added or "none (all present)")
    return added


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--retention-days", type=int, default=30, help="history retention")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    if not settings.temporal_address:
        raise SystemExit("PAY_TEMPORAL_ADDRESS is not set: this job prepares an external cluster")
    asyncio.run(setup(settings, retention=timedelta(days=args.retention_days)))


if __name__ == "__main__":
    main()
