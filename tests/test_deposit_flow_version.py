"""Flow version 2 of DepositWorkflow: one `prepare_deposit` step, and no patch markers.

Version 1 histories carried a marker and a search-attribute upsert for each of its five
`workflow.patched` changes (8 of a card deposit's 21 events) and three local activities before
the charge; they still replay (test_deposit_replay). A deposit started now runs version 2."""

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout

from tests.conftest import VISA_DECLINED, VISA_OK, card_deposit, deposit_and_wait, new_player
from workflows.deposit import _leaves_outcome_unknown
from workflows.deposit_models import CURRENT_FLOW_VERSION, FLOW_PREPARED


async def _markers(client: Client, workflow_id: str) -> tuple[list[str], int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    return names, len(history.events)


async def test_card_deposit_runs_prepare_charge_credit_without_patch_markers(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    assert CURRENT_FLOW_VERSION >= FLOW_PREPARED
    player = await new_player(api)
    shown = await deposit_and_wait(api, temporal_client, card_deposit(player, number=VISA_OK))
    assert shown["status"] == "succeeded"
    assert len(shown["ledger"]) == 2  # the credit and the provider fee
    markers, events = await _markers(temporal_client, shown["workflow_id"])
    assert "core_patch" not in markers
    assert markers.count("core_local_activity") == 3  # prepare, charge, credit
    assert events <= 11, events


async def test_declined_card_is_recorded_after_the_one_prepare_step(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player = await new_player(api)
    shown = await deposit_and_wait(api, temporal_client, card_deposit(player, number=VISA_DECLINED))
    assert shown["status"] == "failed"
    assert shown["status_reason"].startswith("provider_declined:")
    markers, _ = await _markers(temporal_client, shown["workflow_id"])
    assert "core_patch" not in markers
    assert markers.count("core_local_activity") == 3  # prepare, charge, the failed status


def test_only_the_providers_clear_failure_allows_failover_without_an_inquiry() -> None:
    """Version 2 inquires before leaving a provider after any failure that is not the
    provider's own clear one: a charge can succeed and the activity fail afterwards (its
    attempt record met a database outage), and failing over then would charge twice."""
    unavailable = ApplicationError("503", type="ProviderUnavailable", non_retryable=True)
    timeout = ApplicationError("slow", type="ProviderTimeout", non_retryable=True)
    database = ApplicationError("connection refused", type="OperationalError")
    assert not _leaves_outcome_unknown(unavailable, strict=True)
    assert _leaves_outcome_unknown(timeout, strict=True)
    assert _leaves_outcome_unknown(
        TemporalTimeout("t", type=None, last_heartbeat_details=[]), strict=True
    )
    assert _leaves_outcome_unknown(database, strict=True)
    assert not _leaves_outcome_unknown(database, strict=False)  # how version 1 replays
