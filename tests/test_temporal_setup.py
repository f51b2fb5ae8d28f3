"""The compose one-shot job `python -m stack.temporal_setup` against a real Temporal dev server:
it registers a missing namespace and this project's search attributes, and is idempotent."""

import uuid
from datetime import timedelta

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from config import Settings
from stack.temporal_setup import setup
from tests.conftest import BIN
from workflows.search_attributes import ALL


async def test_setup_registers_the_namespace_and_search_attributes() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(BIN / "temporal"))
    try:
        namespace = f"payments-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            environment="test",
            temporal_address=env.client.service_client.config.target_host,
            temporal_namespace=namespace,
        )
        added = await setup(settings, retention=timedelta(days=3), delay=0.5)
        assert sorted(added) == sorted(key.name for key in ALL)

        described = await env.client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=3)
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        for key in ALL:
            assert int(listed.custom_attributes[key.name]) == int(key.indexed_value_type)

        assert await setup(settings, delay=0.5) == []  # a second run changes nothing
    finally:
        await env.shutdown()
