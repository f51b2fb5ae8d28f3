"""The AES-GCM payload codec: unit properties (binding to namespace and workflow, production's
refusal of plaintext, key rotation in two deploys), a real deposit on the time-skipping server
with the codec on as in production (its history holds no plaintext; its input replayed into
another workflow, or an input in clear, fails in the worker), and the codec endpoint the
Temporal Web UI and the CLI call."""

import asyncio
import base64
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.message import Message
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload, Payloads, WorkflowType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DefaultFailureConverterWithEncodedAttributes,
    WorkflowSerializationContext,
)
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.session import COOKIE_NAME, issue
from codec.aesgcm import (
    ENCODING,
    KEY_ID_METADATA,
    NAMESPACE_METADATA,
    WORKFLOW_ID_METADATA,
    AesGcmCodec,
    Binding,
    BindingError,
    DecryptionError,
    PlaintextRefusedError,
    UnknownKeyError,
)
from codec.converter import data_converter, payload_codec
from config import Settings
from db.api_keys import issue_key, revoke_key
from domain.roles import Role
from providers.registry import provider_http_client
from stack.search_attributes import ensure_search_attributes
from tests.conftest import BIN, VISA_OK, card_deposit, player_body
from worker import build_worker

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)


def _json_payload(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


# -- the codec itself ---------------------------------------------------------------------------


async def test_round_trip_encrypts_every_payload_under_the_active_key() -> None:
    codec = AesGcmCodec({"a": KEY_A}, "a")
    originals = [_json_payload({"card_last4": "4242", "n": i}) for i in range(3)]
    encoded = await codec.encode(originals)
    for sealed in encoded:
        assert sealed.metadata["encoding"] == ENCODING
        assert sealed.metadata[KEY_ID_METADATA] == b"a"
        assert b"4242" not in sealed.data
        assert b"json/plain" not in sealed.data
    assert len({p.data for p in encoded}) == 3  # fresh nonce each time
    assert await codec.decode(encoded) == originals


async def test_same_payload_twice_gives_different_ciphertexts() -> None:
    codec = AesGcmCodec({"a": KEY_A}, "a")
    payload = _json_payload("same")
    first, second = await codec.encode([payload, payload])
    assert first.data != second.data


async def test_rotation_old_payloads_decrypt_after_the_active_key_changes() -> None:
    before = AesGcmCodec({"2024": KEY_A}, "2024")
    old = await before.encode([_json_payload("written under 2024")])

    after = AesGcmCodec({"2024": KEY_A, "2025": KEY_B}, "2025")
    new = await after.encode([_json_payload("written under 2025")])
    assert new[0].metadata[KEY_ID_METADATA] == b"2025"
    assert await after.decode(old) == [_json_payload("written under 2024")]
    assert await after.decode(new) == [_json_payload("written under 2025")]

    retired = AesGcmCodec({"2025": KEY_B}, "2025")
    with pytest.raises(UnknownKeyError, match=r"'2024'.*not configured.*PAY_CODEC_KEYS"):
        await retired.decode(old)


async def test_tampered_ciphertext_fails() -> None:
    codec = AesGcmCodec({"a": KEY_A}, "a")
    (sealed,) = await codec.encode([_json_payload({"amount": 500000})])
    for position in (0, 12, len(sealed.data) - 1):  # nonce, ciphertext, tag
        data = bytearray(sealed.data)
        data[position] ^= 0x01
        tampered = Payload(metadata=dict(sealed.metadata), data=bytes(data))
        with pytest.raises(DecryptionError, match="failed authentication"):
            await codec.decode([tampered])
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1])
    with pytest.raises(DecryptionError):
        await codec.decode([truncated])


async def test_key_id_is_authenticated_too() -> None:
    """Relabelling a ciphertext with another configured key id does not decrypt it."""
    codec = AesGcmCodec({"a": KEY_A, "b": KEY_A}, "a")
    (sealed,) = await codec.encode([_json_payload("x")])
    relabelled = Payload(
        metadata={**sealed.metadata, KEY_ID_METADATA: b"b"},
        data=sealed.data,
    )
    with pytest.raises(DecryptionError):
        await codec.decode([relabelled])


async def test_plain_payloads_pass_through_decoding() -> None:
    """History written before the codec was turned on stays readable."""
    codec = AesGcmCodec({"a": KEY_A}, "a")
    plain = _json_payload({"written": "before encryption"})
    assert await codec.decode([plain]) == [plain]


async def test_strict_mode_refuses_plaintext_on_decode() -> None:
    """Production: a payload that is not encrypted is an error, never passed through."""
    strict = AesGcmCodec({"a": KEY_A}, "a", refuse_plaintext=True, refuse_unbound=True)
    for plain in (_json_payload({"approve": True}), Payload(data=b"raw"), Payload()):
        with pytest.raises(PlaintextRefusedError, match=r"not encrypted.*refused"):
            await strict.decode([plain])
    workflow = strict.bound_to(Binding("default", "deposit-dep_1"))
    with pytest.raises(PlaintextRefusedError, match="workflow 'deposit-dep_1'"):
        await workflow.decode([_json_payload("injected signal")])


# -- binding to namespace and workflow id --------------------------------------------------------


def _for(codec: AesGcmCodec, namespace: str, workflow_id: str) -> AesGcmCodec:
    return codec.bound_to(Binding(namespace, workflow_id))


async def test_a_ciphertext_is_bound_to_its_namespace_and_workflow() -> None:
    codec = AesGcmCodec({"a": KEY_A}, "a", refuse_plaintext=True, refuse_unbound=True)
    original = _json_payload({"deposit_id": "dep_1", "amount_minor": 500000})
    (sealed,) = await _for(codec, "default", "deposit-dep_1").encode([original])
    assert sealed.metadata[NAMESPACE_METADATA] == b"default"
    assert sealed.metadata[WORKFLOW_ID_METADATA] == b"deposit-dep_1"

    assert await _for(codec, "default", "deposit-dep_1").decode([sealed]) == [original]
    # Moved into another workflow's history, or another namespace: refused.
    for namespace, workflow_id in (("default", "withdrawal-wd_1"), ("other", "deposit-dep_1")):
        with pytest.raises(BindingError, match=r"cannot be read for.*does not move"):
            await _for(codec, namespace, workflow_id).decode([sealed])
    # Relabelled to pass the check: the metadata is authenticated, so decryption fails.
    relabelled = Payload(
        metadata={**sealed.metadata, WORKFLOW_ID_METADATA: b"withdrawal-wd_1"}, data=sealed.data
    )
    with pytest.raises(DecryptionError, match="failed authentication"):
        await _for(codec, "default", "withdrawal-wd_1").decode([relabelled])
    # Without a workflow (the /codec endpoint): decrypted under the binding it states.
    assert await codec.decode([sealed]) == [original]
    assert await codec.bound_to(Binding("default")).decode([sealed]) == [original]
    with pytest.raises(BindingError):
        await codec.bound_to(Binding("other")).decode([sealed])


async def test_the_sdk_serialization_context_binds_every_payload() -> None:
    """The SDK calls `with_context` with the workflow a payload is for; the converter's codec
    binds to it, an activity of the same workflow reads it, another workflow does not."""
    converter = data_converter(production())
    workflow = converter.with_context(WorkflowSerializationContext("default", "deposit-dep_1"))
    activity = converter.with_context(
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="charge_card",
            activity_task_queue="payments",
            workflow_id="deposit-dep_1",
            workflow_type="DepositWorkflow",
            is_local=False,
        )
    )
    other = converter.with_context(WorkflowSerializationContext("default", "deposit-dep_2"))
    (sealed,) = await workflow.encode([{"amount_minor": 500000}])
    assert sealed.metadata[WORKFLOW_ID_METADATA] == b"deposit-dep_1"
    assert await activity.decode([sealed]) == [{"amount_minor": 500000}]
    with pytest.raises(BindingError):
        await other.decode([sealed])
    assert isinstance(converter.payload_codec, AesGcmCodec)
    assert converter.payload_codec.binding is None  # the shared instance is never mutated


async def test_a_schedule_run_reads_the_input_bound_to_the_schedule_action_id() -> None:
    """A schedule encodes for the configured id; the server starts "<id>-<RFC 3339 time>"."""
    codec = AesGcmCodec({"a": KEY_A}, "a", refuse_plaintext=True, refuse_unbound=True)
    (sealed,) = await _for(codec, "default", "finance-snapshot").encode([_json_payload({})])
    run = _for(codec, "default", "finance-snapshot-2026-11-28T02:00:00Z")
    assert await run.decode([sealed]) == [_json_payload({})]
    for not_a_run in (
        "finance-snapshot-evil",
        "finance-snapshot-2026-11-28T02:00:00Z-x",
        "finance-snapshot2026-11-28T02:00:00Z",
        "other-finance-snapshot-2026-11-28T02:00:00Z",
    ):
        with pytest.raises(BindingError):
            await _for(codec, "default", not_a_run).decode([sealed])


async def test_unbound_ciphertexts_are_refused_where_the_workflow_is_known() -> None:
    """The format written before binding (and by a codec without context) names no workflow:
    strict workers refuse it unless PAY_CODEC_ACCEPT_UNBOUND opens a migration window."""
    (unbound,) = await AesGcmCodec({"a": KEY_A}, "a").encode([_json_payload("old")])
    assert NAMESPACE_METADATA not in unbound.metadata
    assert WORKFLOW_ID_METADATA not in unbound.metadata
    strict = AesGcmCodec({"a": KEY_A}, "a", refuse_plaintext=True, refuse_unbound=True)
    with pytest.raises(BindingError, match=r"bound to no workflow.*PAY_CODEC_ACCEPT_UNBOUND"):
        await _for(strict, "default", "deposit-dep_1").decode([unbound])
    window = AesGcmCodec({"a": KEY_A}, "a", refuse_plaintext=True, refuse_unbound=False)
    assert await _for(window, "default", "deposit-dep_1").decode([unbound]) == [
        _json_payload("old")
    ]
    assert await strict.decode([unbound]) == [_json_payload("old")]  # the endpoint shows it


async def test_binding_metadata_must_come_in_pairs() -> None:
    codec = AesGcmCodec({"a": KEY_A}, "a")
    (sealed,) = await _for(codec, "default", "deposit-dep_1").encode([_json_payload("x")])
    half = Payload(
        metadata={k: v for k, v in sealed.metadata.items() if k != NAMESPACE_METADATA},
        data=sealed.data,
    )
    with pytest.raises(DecryptionError, match="only one of"):
        await codec.decode([half])


# -- key rotation: two deploys -------------------------------------------------------------------


async def test_key_rotation_in_two_deploys() -> None:
    """Deploy 1 adds the new key to every process's decrypt set, still encrypting with the old
    one; deploy 2 makes the new key active. Between them, a process already on deploy 2 may
    write under the new key while others are still on deploy 1: they read it, because they
    already hold it. History written before either deploy stays readable."""
    workflow = Binding("default", "deposit-dep_1")
    before = AesGcmCodec({"2025": KEY_A}, "2025", refuse_plaintext=True, refuse_unbound=True)
    first = AesGcmCodec(
        {"2025": KEY_A, "2026": KEY_B}, "2025", refuse_plaintext=True, refuse_unbound=True
    )
    second = AesGcmCodec(
        {"2025": KEY_A, "2026": KEY_B}, "2026", refuse_plaintext=True, refuse_unbound=True
    )
    (old,) = await before.bound_to(workflow).encode([_json_payload("before")])
    (during,) = await first.bound_to(workflow).encode([_json_payload("deploy 1")])
    (after,) = await second.bound_to(workflow).encode([_json_payload("deploy 2")])
    assert during.metadata[KEY_ID_METADATA] == b"2025"
    assert after.metadata[KEY_ID_METADATA] == b"2026"
    # Mid-rollout: deploy-1 processes read what deploy-2 processes write, and the reverse.
    assert await first.bound_to(workflow).decode([after]) == [_json_payload("deploy 2")]
    assert await second.bound_to(workflow).decode([old, during]) == [
        _json_payload("before"),
        _json_payload("deploy 1"),
    ]
    # Skipping deploy 1 is what breaks: a process without the new key cannot read it.
    with pytest.raises(UnknownKeyError, match=r"codec key '2026'.*not configured.*PAY_CODEC_KEYS"):
        await before.bound_to(workflow).decode([after])


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="PAY_CODEC_ACTIVE_KEY"):
        AesGcmCodec({"a": KEY_A}, "b")
    with pytest.raises(ValueError, match="32 bytes"):
        AesGcmCodec({"a": KEY_A[:16]}, "a")
    with pytest.raises(ValueError, match="at least one key"):
        AesGcmCodec({}, "a")


def _key(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "idempotency_secret": "i" * 40,
        "provider_secrets": {"halyk": "k" * 40},
        "webhook_secrets": {"halyk": "w" * 40},
        "codec_keys": {"2025": _key(KEY_A)},
        "codec_active_key": "2025",
        "operator_session_secret": "s" * 40,
        "approval_token_secret": "a" * 40,
        "metrics_token": "m" * 40,
        "exclusion_registry_secret": "r" * 24,
        "esu_secret": "e" * 24,
        # No provider is configured: production needs every configured provider's secrets.
        "providers": (),
        "payout_providers": {},
    }
    values.update(overrides)
    return Settings(**values)


def test_converter_is_plain_in_development_and_encrypting_in_production() -> None:
    assert data_converter(Settings(environment="development")) is pydantic_data_converter
    assert data_converter(Settings(environment="test")) is pydantic_data_converter

    converter = data_converter(production())
    assert isinstance(converter.payload_codec, AesGcmCodec)
    assert converter.payload_codec.active_key_id == "2025"
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    # Failure messages and stack traces can quote inputs: they are encrypted too.
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes

    assert converter.payload_codec.refuse_plaintext
    assert converter.payload_codec.refuse_unbound
    assert data_converter(Settings(codec_enabled=True)).payload_codec is not None


def test_production_cannot_turn_the_codec_or_its_plaintext_refusal_off() -> None:
    with pytest.raises(ValidationError, match="unset PAY_CODEC_ENABLED"):
        production(codec_enabled=False)
    with pytest.raises(ValidationError, match="unset PAY_CODEC_REFUSE_PLAINTEXT"):
        production(codec_refuse_plaintext=False)
    assert production().codec_strict
    assert production(codec_enabled=True, codec_refuse_plaintext=True).codec_strict
    # A migration window for history written before payloads were bound (README).
    window = data_converter(production(codec_accept_unbound=True)).payload_codec
    assert isinstance(window, AesGcmCodec)
    assert window.refuse_plaintext
    assert not window.refuse_unbound
    # Development and tests: off unless asked, and plaintext then passes through.
    assert not Settings(environment="development").codec_strict
    assert Settings(codec_refuse_plaintext=True).codec_strict


# -- a real deposit with the codec on -------------------------------------------------------------


@pytest.fixture(scope="module")
def codec_settings(settings: Settings) -> Settings:
    """The test settings with the codec on and two keys: the active one and a retired one."""
    return settings.model_copy(
        update={
            "codec_enabled": True,
            "codec_keys": {"old": _secret(KEY_B), "current": _secret(KEY_A)},
            "codec_active_key": "current",
            "codec_refuse_plaintext": True,  # as production: bound, and nothing in clear
            "temporal_task_queue": f"codec-{uuid.uuid4().hex[:8]}",
        }
    )


def _secret(raw: bytes) -> SecretStr:
    return SecretStr(_key(raw))


@pytest.fixture(scope="module")
async def codec_client(
    codec_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Client]:
    """Its own time-skipping server, client and worker, all with the encrypting converter."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter(codec_settings),
    )
    try:
        await ensure_search_attributes(env.client, env.client.namespace)
        async with provider_http_client(codec_settings) as http:
            worker = build_worker(env.client, codec_settings, sessions=sessions, http=http)
            async with worker:
                yield env.client
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def codec_app(codec_settings: Settings, codec_client: Client) -> AsyncIterator[FastAPI]:
    application = create_app(codec_settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = codec_client
        yield application


def _http(app: FastAPI, key: str | None = None, **headers: str) -> httpx.AsyncClient:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    )


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload in a history event, however deeply nested, except search attributes (which
    Temporal indexes, so no codec touches them; they carry ids and enums only)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.name == "search_attributes":
            continue
        if field.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    yield from _payloads(item)
        elif field.is_repeated:
            for item in value:
                yield from _payloads(item)
        else:
            yield from _payloads(value)


def _without_sdk_marker_data(event: HistoryEvent) -> HistoryEvent:
    """The event minus the `data` detail of SDK markers (patches, local activities): the SDK
    core writes it itself, without the codec, and it holds only a version name or the local
    activity's type, attempt and times. A local activity's result is still encrypted."""
    if not event.HasField("marker_recorded_event_attributes"):
        return event
    copy = HistoryEvent()
    copy.CopyFrom(event)
    for sdk_detail in ("data", "patch-data"):
        copy.marker_recorded_event_attributes.details.pop(sdk_detail, None)
    return copy


@pytest.fixture(scope="module")
async def encrypted_deposit(
    codec_app: FastAPI, codec_client: Client, api_keys: dict[Role, str]
) -> tuple[dict[str, Any], WorkflowHistory]:
    async with _http(codec_app, api_keys[Role.MERCHANT]) as api:
        player = await api.post("/v1/players", json=player_body())
        assert player.status_code == 201, player.text
        created = await api.post(
            "/v1/deposits",
            json=card_deposit(player.json()["id"], number=VISA_OK),
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert created.status_code == 202, created.text
        deposit: dict[str, Any] = created.json()
        handle = codec_client.get_workflow_handle(deposit["workflow_id"])
        await handle.result()
        shown = await api.get(f"/v1/deposits/{deposit['id']}")
        assert shown.status_code == 200
    return shown.json(), await handle.fetch_history()


async def test_deposit_history_holds_no_plaintext(
    encrypted_deposit: tuple[dict[str, Any], WorkflowHistory],
) -> None:
    deposit, history = encrypted_deposit
    assert deposit["status"] == "succeeded"
    payloads = [p for event in history.events for p in _payloads(_without_sdk_marker_data(event))]
    assert len(payloads) >= 4  # workflow input, activity inputs and results, workflow result
    # The ciphertexts hold nothing readable; the metadata names the key and the workflow.
    raw = b"".join(p.data for p in payloads)
    for plaintext in (deposit["id"], deposit["player_id"], "KZT", "4242", "json/plain"):
        assert plaintext.encode() not in raw, plaintext
    assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
    assert {p.metadata[KEY_ID_METADATA] for p in payloads} == {b"current"}
    assert {p.metadata[NAMESPACE_METADATA] for p in payloads} == {b"default"}
    assert {p.metadata[WORKFLOW_ID_METADATA] for p in payloads} == {deposit["workflow_id"].encode()}


async def test_history_decrypts_with_the_configured_keys(
    encrypted_deposit: tuple[dict[str, Any], WorkflowHistory], codec_settings: Settings
) -> None:
    deposit, history = encrypted_deposit
    payloads = [p for event in history.events for p in _payloads(_without_sdk_marker_data(event))]
    workflow = Binding("default", deposit["workflow_id"])
    decoded = await payload_codec(codec_settings).bound_to(workflow).decode(payloads)
    assert {p.metadata["encoding"] for p in decoded} <= {b"json/plain", b"binary/null"}
    assert any(deposit["id"].encode() in p.data for p in decoded)
    # The SDK's own marker data is the one thing in clear, and a strict codec refuses it: the
    # workers never decode it (the SDK core reads it), the /codec endpoint hands it back.
    markers = [p for event in history.events for p in _payloads(event) if p not in payloads]
    assert markers
    with pytest.raises(PlaintextRefusedError):
        await payload_codec(codec_settings).bound_to(workflow).decode(markers[:1])


class _ActivationFailures(logging.Handler):
    """The worker's "Failed handling activation" log records, awaited by run id."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.errors: dict[str, BaseException] = {}
        self.arrived = asyncio.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Failed handling activation" in message and record.exc_info and record.exc_info[1]:
            run_id = message.rsplit(" ", 1)[-1]
            self.errors[run_id] = record.exc_info[1]
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._notify()))

    async def _notify(self) -> None:
        async with self.arrived:
            self.arrived.notify_all()

    async def error_of(self, run_id: str) -> BaseException:
        async with asyncio.timeout(60), self.arrived:
            await self.arrived.wait_for(lambda: run_id in self.errors)
        return self.errors[run_id]


async def _first_task_failure(client: Client, task_queue: str, payload: Payload) -> BaseException:
    """Starts a deposit workflow whose input is `payload`, as anyone with access to Temporal
    could (raw gRPC, no codec), and returns what the worker raised handling its first task."""
    watcher = _ActivationFailures()
    worker_log = logging.getLogger("temporalio.worker._workflow")
    worker_log.addHandler(watcher)
    workflow_id = f"deposit-injected-{uuid.uuid4().hex}"
    try:
        started = await client.workflow_service.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_id=workflow_id,
                workflow_type=WorkflowType(name="DepositWorkflow"),
                task_queue=TaskQueue(name=task_queue),
                input=Payloads(payloads=[payload]),
                request_id=str(uuid.uuid4()),
            )
        )
        return await watcher.error_of(started.run_id)
    finally:
        worker_log.removeHandler(watcher)
        await client.get_workflow_handle(workflow_id).terminate("codec test")


async def test_a_ciphertext_moved_into_another_workflow_fails_to_decode_in_the_worker(
    encrypted_deposit: tuple[dict[str, Any], WorkflowHistory],
    codec_client: Client,
    codec_settings: Settings,
) -> None:
    """The deposit's real encrypted input, replayed as the input of a new workflow: the worker
    refuses it (the workflow task fails) instead of running a second deposit with it; so does
    an input in clear."""
    deposit, history = encrypted_deposit
    queue = codec_settings.temporal_task_queue
    started = history.events[0].workflow_execution_started_event_attributes
    (moved,) = started.input.payloads
    assert moved.metadata[WORKFLOW_ID_METADATA] == deposit["workflow_id"].encode()
    error = await _first_task_failure(codec_client, queue, moved)
    assert isinstance(error, BindingError)
    assert f"payload encrypted for workflow {deposit['workflow_id']!r}" in str(error)
    assert "a ciphertext does not move between workflows" in str(error)

    plain = _json_payload({"deposit_id": deposit["id"], "amount_minor": 1})
    error = await _first_task_failure(codec_client, queue, plain)
    assert isinstance(error, PlaintextRefusedError)
    assert "payload with encoding 'json/plain' is not encrypted" in str(error)


async def test_search_attributes_stay_readable_and_hold_no_personal_data(
    encrypted_deposit: tuple[dict[str, Any], WorkflowHistory],
) -> None:
    """Search attributes are indexed by Temporal, so they are not encrypted: ids and enums only."""
    _, history = encrypted_deposit
    upserts = [
        event.upsert_workflow_search_attributes_event_attributes.search_attributes
        for event in history.events
        if event.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    assert upserts
    for attributes in upserts:
        for name, payload in attributes.indexed_fields.items():
            assert payload.metadata["encoding"] != ENCODING, name
            assert b"4242" not in payload.data


# -- the codec endpoint for the Temporal Web UI ---------------------------------------------------


def _wire(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def _unwire(item: dict[str, Any]) -> Payload:
    return Payload(
        metadata={k: base64.b64decode(v) for k, v in item["metadata"].items()},
        data=base64.b64decode(item["data"]),
    )


async def test_codec_endpoint_round_trip_over_http(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    original = _json_payload({"deposit": "dep_123", "amount": 500000})
    namespace = {"X-Namespace": codec_settings.temporal_namespace, "X-Workflow-Id": "deposit-1"}
    async with _http(codec_app, api_keys[Role.OPERATOR], **namespace) as operator:
        encoded = await operator.post("/codec/encode", json={"payloads": [_wire(original)]})
        assert encoded.status_code == 200, encoded.text
        (sealed,) = encoded.json()["payloads"]
        assert _unwire(sealed).metadata["encoding"] == ENCODING
        assert b"dep_123" not in _unwire(sealed).data

        decoded = await operator.post("/codec/decode", json=encoded.json())
        assert decoded.status_code == 200, decoded.text
        assert [_unwire(p) for p in decoded.json()["payloads"]] == [original]

        empty = await operator.post("/codec/decode", json={"payloads": []})
        assert empty.json() == {"payloads": []}


async def test_codec_endpoint_decodes_a_real_history(
    codec_app: FastAPI,
    api_keys: dict[Role, str],
    encrypted_deposit: tuple[dict[str, Any], WorkflowHistory],
) -> None:
    deposit, history = encrypted_deposit
    payloads = [p for event in history.events for p in _payloads(event)]
    async with _http(codec_app, api_keys[Role.ADMIN]) as admin:
        response = await admin.post(
            "/codec/decode", json={"payloads": [_wire(p) for p in payloads]}
        )
    assert response.status_code == 200, response.text
    decoded = [_unwire(p) for p in response.json()["payloads"]]
    assert len(decoded) == len(payloads)
    assert any(deposit["id"].encode() in p.data for p in decoded)


async def test_codec_endpoint_needs_an_operator_key(
    codec_app: FastAPI, api_keys: dict[Role, str]
) -> None:
    body = {"payloads": [_wire(_json_payload("x"))]}
    async with _http(codec_app) as anonymous:
        assert (await anonymous.post("/codec/decode", json=body)).status_code == 401
    async with _http(codec_app, "not-a-key") as wrong:
        assert (await wrong.post("/codec/decode", json=body)).status_code == 401
    async with _http(codec_app, api_keys[Role.MERCHANT]) as merchant:
        refused = await merchant.post("/codec/decode", json=body)
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert (await merchant.post("/codec/encode", json=body)).status_code == 403


async def test_codec_endpoint_errors(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    stranger = AesGcmCodec({"elsewhere": os.urandom(32)}, "elsewhere")
    (foreign,) = await stranger.encode([_json_payload("x")])
    async with _http(codec_app, api_keys[Role.OPERATOR]) as operator:
        unknown = await operator.post("/codec/decode", json={"payloads": [_wire(foreign)]})
        assert unknown.status_code == 422
        assert unknown.json()["code"] == "undecryptable_payload"
        assert "'elsewhere'" in unknown.json()["detail"]

        bad = await operator.post("/codec/decode", json={"payloads": [{"data": "***"}]})
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid_payload"

        other = await operator.post(
            "/codec/decode",
            json={"payloads": []},
            headers={"X-Namespace": "someone-else"},
        )
        assert other.status_code == 400
        assert other.json()["code"] == "unknown_namespace"


async def test_codec_endpoint_answers_the_ui_cors_preflight(
    codec_app: FastAPI, codec_settings: Settings, api_keys: dict[Role, str]
) -> None:
    ui = codec_settings.temporal_web_url
    async with _http(codec_app) as browser:
        preflight = await browser.options(
            "/codec/decode",
            headers={
                "Origin": ui,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ui
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "x-namespace"} <= {
            h.strip() for h in allowed.split(",")
        }
        assert "POST" in preflight.headers["access-control-allow-methods"]

        elsewhere = await browser.options(
            "/codec/encode",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in elsewhere.headers

        # Errors carry the CORS headers too, so the UI can show why.
        denied = await browser.post("/codec/decode", json={"payloads": []}, headers={"Origin": ui})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == ui

    async with _http(codec_app, api_keys[Role.OPERATOR], Origin=ui) as operator:
        ok = await operator.post("/codec/decode", json={"payloads": []})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ui
        assert ok.headers["access-control-allow-credentials"] == "true"


async def test_codec_endpoint_binds_to_the_workflow_it_is_told(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    original = _json_payload({"deposit": "dep_bound"})
    body = {"payloads": [_wire(original)]}
    namespace = codec_settings.temporal_namespace
    ui_headers = {"X-Namespace": namespace, "Origin": codec_settings.temporal_web_url}
    async with _http(codec_app, api_keys[Role.OPERATOR], **ui_headers) as ui:
        # Production (strict): the UI and the CLI cannot say which workflow, so no encoding.
        refused = await ui.post("/codec/encode", json=body)
        assert refused.status_code == 400
        assert refused.json()["code"] == "workflow_id_required"
        assert "X-Workflow-Id" in refused.json()["detail"]

        encoded = await ui.post("/codec/encode", json=body, headers={"X-Workflow-Id": "wf-1"})
        assert encoded.status_code == 200, encoded.text
        (sealed,) = [_unwire(p) for p in encoded.json()["payloads"]]
        assert sealed.metadata[WORKFLOW_ID_METADATA] == b"wf-1"
        assert sealed.metadata[NAMESPACE_METADATA] == namespace.encode()

        # Told the workflow: checked. Not told (the UI): decrypted under its own binding.
        same = await ui.post(
            "/codec/decode", json=encoded.json(), headers={"X-Workflow-Id": "wf-1"}
        )
        assert [_unwire(p) for p in same.json()["payloads"]] == [original]
        moved = await ui.post(
            "/codec/decode", json=encoded.json(), headers={"X-Workflow-Id": "wf-2"}
        )
        assert moved.status_code == 422
        assert moved.json()["code"] == "payload_of_another_workflow"
        assert "'wf-1'" in moved.json()["detail"]
        assert "'wf-2'" in moved.json()["detail"]
        shown = await ui.post("/codec/decode", json=encoded.json())
        assert [_unwire(p) for p in shown.json()["payloads"]] == [original]

    # A ciphertext made for another namespace is not decrypted under this one.
    foreign = payload_codec(codec_settings).bound_to(Binding("elsewhere", "wf-1"))
    (sealed,) = await foreign.encode([original])
    async with _http(codec_app, api_keys[Role.OPERATOR]) as operator:
        other = await operator.post("/codec/decode", json={"payloads": [_wire(sealed)]})
    assert other.status_code == 422
    assert other.json()["code"] == "payload_of_another_workflow"


async def test_codec_endpoint_hands_plaintext_back_even_in_production(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    """The workers refuse plaintext; the endpoint only displays, and the SDK writes its marker
    data in clear, so refusing it would break the CLI on every patched workflow."""
    assert codec_settings.codec_strict
    marker = Payload(metadata={"encoding": b"json/plain"}, data=b'{"patch":"core"}')
    async with _http(codec_app, api_keys[Role.OPERATOR]) as operator:
        shown = await operator.post("/codec/decode", json={"payloads": [_wire(marker)]})
    assert shown.status_code == 200
    assert [_unwire(p) for p in shown.json()["payloads"]] == [marker]


async def test_a_merchant_key_gets_a_clear_403(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    body = {"payloads": [_wire(_json_payload("x"))]}
    ui = codec_settings.temporal_web_url
    browser_like = {"Origin": ui, "X-Namespace": codec_settings.temporal_namespace}
    for headers in ({}, browser_like):
        async with _http(codec_app, api_keys[Role.MERCHANT], **headers) as merchant:
            for path in ("/codec/decode", "/codec/encode"):
                refused = await merchant.post(path, json=body)
                assert refused.status_code == 403, path
                assert refused.headers["content-type"] == "application/problem+json"
                problem = refused.json()
                assert problem["code"] == "forbidden"
                assert "needs an operator or admin API key" in problem["detail"]
                assert "a merchant key is not one" in problem["detail"]


async def test_the_cli_gets_refusals_as_values_it_prints(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    """The Go SDK behind the temporal CLI retries every codec error until its deadline; a call
    with X-Namespace and no Origin (not a browser) gets 200 and the reason in each value."""
    cli = {"X-Namespace": codec_settings.temporal_namespace}
    good = _json_payload({"deposit": "dep_cli"})
    (sealed,) = (
        await payload_codec(codec_settings).bound_to(Binding("default", "wf")).encode([good])
    )
    stranger = AesGcmCodec({"elsewhere": os.urandom(32)}, "elsewhere")
    (foreign,) = await stranger.encode([good])
    body = {"payloads": [_wire(sealed), _wire(foreign)]}

    async with _http(codec_app, api_keys[Role.MERCHANT], **cli) as merchant:
        refused = await merchant.post("/codec/decode", json=body)
    assert refused.status_code == 200
    assert refused.headers["x-codec-refused"] == "403"
    values = [json.loads(_unwire(p).data) for p in refused.json()["payloads"]]
    assert len(values) == 2
    assert all(v.startswith("codec refused (403 forbidden): The codec decrypts") for v in values)

    async with _http(codec_app, **cli) as anonymous:
        refused = await anonymous.post("/codec/decode", json=body)
    assert refused.headers["x-codec-refused"] == "401"
    assert json.loads(_unwire(refused.json()["payloads"][0]).data).startswith(
        "codec refused (401 unauthorized)"
    )

    async with _http(codec_app, api_keys[Role.OPERATOR], **cli) as operator:
        mixed = await operator.post("/codec/decode", json=body)
    assert mixed.status_code == 200
    assert mixed.headers["x-codec-refused"] == "422"
    first, second = (_unwire(p) for p in mixed.json()["payloads"])
    assert first == good
    assert "'elsewhere'" in json.loads(second.data)
    assert json.loads(second.data).startswith("codec could not decrypt (undecryptable_payload)")


def test_codec_routes_are_documented(codec_app: FastAPI) -> None:
    paths = codec_app.openapi()["paths"]
    assert set(paths["/codec/decode"]) == {"post"}
    assert set(paths["/codec/encode"]) == {"post"}


# -- the operator session cookie the Web UI sends -------------------------------------------------


def _session_cookie(response: httpx.Response) -> tuple[str, str]:
    """(the cookie's value, the whole Set-Cookie header)."""
    header = response.headers["set-cookie"]
    name, _, rest = header.partition("=")
    assert name == COOKIE_NAME
    return rest.split(";", 1)[0], header


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


async def test_an_operator_session_cookie_lets_the_browser_decode(
    codec_app: FastAPI, api_keys: dict[Role, str], codec_settings: Settings
) -> None:
    original = _json_payload({"deposit": "dep_cookie"})
    (sealed,) = await payload_codec(codec_settings).encode([original])
    body = {"payloads": [_wire(sealed)]}
    for role in (Role.OPERATOR, Role.ADMIN):
        async with _http(codec_app, api_keys[role]) as console:
            opened = await console.post("/v1/session")
        assert opened.status_code == 201, opened.text
        assert opened.json()["role"] == role.value
        token, header = _session_cookie(opened)
        attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
        assert {"httponly", "path", "max-age", "samesite"} <= attributes
        assert f"max-age={codec_settings.operator_session_ttl_seconds}" in header.lower()
        assert "samesite=lax" in header.lower()  # development: plain HTTP, same site
        assert "secure" not in attributes
        api_key = api_keys[role]
        assert api_key not in header  # the cookie carries the key id, never the key

        async with _http(codec_app, **_cookie(token)) as browser:  # no Authorization header
            decoded = await browser.post("/codec/decode", json=body)
            assert decoded.status_code == 200, decoded.text
            assert [_unwire(p) for p in decoded.json()["payloads"]] == [original]
            shown = await browser.get("/v1/session")
            assert shown.status_code == 200
            assert shown.json()["key_id"] == opened.json()["key_id"]
            # Only the codec takes the cookie: nothing that reads or changes payments does.
            assert (await browser.get("/v1/ops/stuck")).status_code == 401
            assert (await browser.get("/v1/withdrawals?status=in_review")).status_code == 401


async def test_merchant_and_anonymous_callers_get_no_session(
    codec_app: FastAPI, api_keys: dict[Role, str]
) -> None:
    async with _http(codec_app, api_keys[Role.MERCHANT]) as merchant:
        refused = await merchant.post("/v1/session")
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert "set-cookie" not in refused.headers
    async with _http(codec_app) as anonymous:
        assert (await anonymous.post("/v1/session")).status_code == 401
        assert (await anonymous.get("/v1/session")).status_code == 401
    async with _http(codec_app, "kzp_not_a_key") as wrong:
        assert (await wrong.post("/v1/session")).status_code == 401


async def test_expired_forged_and_revoked_sessions_are_refused(
    codec_app: FastAPI,
    codec_settings: Settings,
    api_keys: dict[Role, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with _http(codec_app, api_keys[Role.OPERATOR]) as console:
        key_id = (await console.post("/v1/session")).json()["key_id"]
    body: dict[str, list[Any]] = {"payloads": []}
    now = datetime.now(UTC)
    ttl = timedelta(seconds=codec_settings.operator_session_ttl_seconds)

    expired, _ = issue(codec_settings, key_id=key_id, role=Role.OPERATOR, now=now - ttl - ttl)
    almost, _ = issue(codec_settings, key_id=key_id, role=Role.OPERATOR, now=now - ttl / 2)
    other_secret = codec_settings.model_copy(
        update={"operator_session_secret": SecretStr("x" * 40)}
    )
    forged, _ = issue(other_secret, key_id=key_id, role=Role.OPERATOR, now=now)
    version, _, signature = almost.split(".")
    merchant_claims = base64.urlsafe_b64encode(
        json.dumps({"kid": key_id, "role": "admin", "iat": 0, "exp": 4102444800}).encode()
    ).decode()
    relabelled = f"{version}.{merchant_claims.rstrip('=')}.{signature}"

    async with _http(codec_app, **_cookie(almost)) as browser:
        assert (await browser.post("/codec/decode", json=body)).status_code == 200
    for token in (expired, forged, relabelled, "v1..", "garbage", ""):
        async with _http(codec_app, **_cookie(token)) as browser:
            refused = await browser.post("/codec/decode", json=body)
            assert refused.status_code == 401, token
            assert refused.json()["code"] == "unauthorized"

    # Revoking the key ends the sessions opened with it.
    async with sessions.begin() as session:
        issued = await issue_key(session, name="to revoke", role=Role.OPERATOR)
    async with _http(codec_app, issued.secret) as console:
        token, _ = _session_cookie(await console.post("/v1/session"))
    async with _http(codec_app, **_cookie(token)) as browser:
        assert (await browser.post("/codec/decode", json=body)).status_code == 200
        async with sessions.begin() as session:
            assert await revoke_key(session, key_id=issued.holder.key_id)
        revoked = await browser.post("/codec/decode", json=body)
        assert revoked.status_code == 401
        assert "revoked" in revoked.json()["detail"]

    # A merchant key's id in a genuinely signed token still gets no decryption.
    async with sessions.begin() as session:
        merchant = await issue_key(session, name="merchant", role=Role.MERCHANT)
    with pytest.raises(ValueError, match="operator and admin"):
        issue(codec_settings, key_id=merchant.holder.key_id, role=Role.MERCHANT, now=now)
    smuggled, _ = issue(codec_settings, key_id=merchant.holder.key_id, role=Role.OPERATOR, now=now)
    async with _http(codec_app, **_cookie(smuggled)) as browser:
        assert (await browser.post("/codec/decode", json=body)).status_code == 403


async def test_logout_drops_the_cookie(codec_app: FastAPI) -> None:
    async with _http(codec_app) as browser:
        closed = await browser.delete("/v1/session")
    assert closed.status_code == 204
    token, header = _session_cookie(closed)
    assert token in ("", '""')
    assert "max-age=0" in header.lower()
    assert "httponly" in header.lower()


async def test_production_cookies_are_secure_and_cross_site(
    codec_settings: Settings, api_keys: dict[Role, str]
) -> None:
    secure = codec_settings.model_copy(update={"operator_session_secure": True})
    application = create_app(secure)
    async with (
        application.router.lifespan_context(application),
        _http(application, api_keys[Role.OPERATOR]) as console,
    ):
        opened = await console.post("/v1/session")
        assert opened.status_code == 201
        _, header = _session_cookie(opened)
        closed = await console.delete("/v1/session")
    lowered = header.lower()
    assert "; secure" in lowered
    assert "samesite=none" in lowered
    assert "httponly" in lowered
    assert "; secure" in closed.headers["set-cookie"].lower()


async def test_the_ui_origin_alone_may_send_credentials(
    codec_app: FastAPI, codec_settings: Settings, api_keys: dict[Role, str]
) -> None:
    ui = codec_settings.temporal_web_url
    async with _http(codec_app, api_keys[Role.OPERATOR]) as console:
        token, _ = _session_cookie(await console.post("/v1/session"))
    request_headers = {"Access-Control-Request-Method": "POST"}
    request_headers["Access-Control-Request-Headers"] = "content-type,x-namespace"
    async with _http(codec_app) as browser:
        preflight = await browser.options(
            "/codec/decode", headers={"Origin": ui, **request_headers}
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ui  # never "*" with cookies
        assert preflight.headers["access-control-allow-credentials"] == "true"
        for origin in ("https://evil.example", "http://127.0.0.1:1", "null"):
            other = await browser.options(
                "/codec/decode", headers={"Origin": origin, **request_headers}
            )
            assert "access-control-allow-origin" not in other.headers, origin
            assert "access-control-allow-credentials" not in other.headers, origin

    async with _http(codec_app, Origin=ui, **_cookie(token)) as browser:
        ok = await browser.post("/codec/decode", json={"payloads": []})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ui
        assert ok.headers["access-control-allow-credentials"] == "true"
    async with _http(codec_app, Origin="https://evil.example", **_cookie(token)) as browser:
        # The server cannot stop the request, but without CORS headers the page cannot read it.
        elsewhere = await browser.post("/codec/decode", json={"payloads": []})
        assert "access-control-allow-origin" not in elsewhere.headers
