"""AES-256-GCM payload codec with key ids, bound to the namespace and workflow a payload is for.

Every payload leaving the process is serialized, encrypted with the active key and replaced by a
`binary/encrypted` payload whose metadata names the key id and, when the SDK says which workflow
the payload belongs to, the namespace and workflow id. All of these are AES-GCM associated data:
relabelling the key id, changing a byte, or moving the ciphertext into another workflow's history
(a deposit's input replayed into a withdrawal, a signal copied from one payment to another) fails
decryption instead of yielding a value.

Which workflow a payload is for comes from Temporal's serialization context
(`temporalio.converter.WithSerializationContext`): the SDK hands every codec call on a workflow's
behalf (its input and result, its activities' inputs and results, heartbeats, signals, queries,
updates, child workflows, failures) the namespace and the workflow id, so the codec binds when it
encodes and checks the binding when it decodes. Without a context (the `/codec` endpoint the Web
UI calls, which learns the namespace but not the workflow) a bound payload is decrypted under the
binding its own metadata states, which the key authenticates, and the caller can only display it.

Strict mode (production): a payload that is not encrypted is refused on decode instead of passed
through, and so is an encrypted payload that names no workflow while the codec knows which
workflow it decodes for (the format written before payloads were bound; see
`PAY_CODEC_ACCEPT_UNBOUND` for a migration window).
"""

import base64
import binascii
import copy
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NAMESPACE_METADATA = "encryption-namespace"
WORKFLOW_ID_METADATA = "encryption-workflow-id"
KEY_BYTES = 32
NONCE_BYTES = 12
_BOUND_FORMAT = b"kzpay payload codec v2\x00"
# A schedule encodes its action's input for the workflow id it is configured with; the server
# starts each run as "<that id>-<RFC 3339 time>" (workflows/finance.py, reconciliation.py).
_SCHEDULED_RUN = re.compile(r"-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


class CodecError(ValueError):
    """A payload cannot be decrypted; the message says why and what to configure."""


class UnknownKeyError(CodecError):
    pass


class DecryptionError(CodecError):
    pass


class PlaintextRefusedError(CodecError):
    """Strict mode: a payload that is not encrypted."""


class BindingError(CodecError):
    """The ciphertext was made for another namespace or workflow, or for none."""


@dataclass(frozen=True)
class Binding:
    """What a payload is bound to: the namespace, and the workflow when it is known."""

    namespace: str
    workflow_id: str | None = None

    def describe(self) -> str:
        if self.workflow_id is None:
            return f"namespace {self.namespace!r}"
        return f"workflow {self.workflow_id!r} in namespace {self.namespace!r}"


def binding_of(context: SerializationContext) -> Binding | None:
    """The workflow a payload is for, from the SDK's serialization context (None: not known)."""
    if isinstance(context, WorkflowSerializationContext):
        return Binding(context.namespace, context.workflow_id)
    if isinstance(context, ActivitySerializationContext):
        return Binding(context.namespace, context.workflow_id)  # None for a standalone activity
    return None  # Nexus: not used here


def decode_key(value: str) -> bytes:
    """A key as configured: standard or URL-safe base64 of exactly 32 random bytes."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a codec key must be base64 of 32 random bytes") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"a codec key must be base64 of {KEY_BYTES} random bytes, this one has {len(raw)}; "
            "generate one with: python -c 'import os,base64; "
            "print(base64.b64encode(os.urandom(32)).decode())'"
        )
    return raw


def _unbound_associated_data(key_id: bytes) -> bytes:
    return ENCODING + b"\x00" + key_id


def _bound_associated_data(key_id: bytes, namespace: bytes, workflow_id: bytes) -> bytes:
    parts = (key_id, namespace, workflow_id)
    return _BOUND_FORMAT + b"".join(struct.pack(">I", len(part)) + part for part in parts)


def _scheduled_run_of(run: str, configured: str) -> bool:
    return run.startswith(configured + "-") and bool(_SCHEDULED_RUN.fullmatch(run, len(configured)))


class AesGcmCodec(PayloadCodec, WithSerializationContext):
    """Encrypts with `active_key_id`; decrypts with whichever configured key a payload names.

    `binding` is the namespace and workflow this instance encodes and decodes for; the SDK sets
    it through `with_context`. Outside strict mode, payloads that are not encrypted (written
    before the codec was turned on) pass through decoding unchanged.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key_id: str,
        *,
        refuse_plaintext: bool = False,
        refuse_unbound: bool = False,
        binding: Binding | None = None,
    ) -> None:
        if not keys:
            raise ValueError("the payload codec needs at least one key (PAY_CODEC_KEYS)")
        if active_key_id not in keys:
            raise ValueError(
                f"the active codec key {active_key_id!r} is not among the configured keys "
                f"{sorted(keys)}: set PAY_CODEC_ACTIVE_KEY to one of them"
            )
        for key_id, key in keys.items():
            if not key_id:
                raise ValueError("codec key ids must not be empty")
            if len(key) != KEY_BYTES:
                raise ValueError(f"codec key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id
        self.refuse_plaintext = refuse_plaintext
        self.refuse_unbound = refuse_unbound
        self.binding = binding

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    def bound_to(self, binding: Binding | None) -> "AesGcmCodec":
        """This codec (same keys and rules) for another namespace and workflow."""
        clone = copy.copy(self)
        clone.binding = binding
        return clone

    def with_context(self, context: SerializationContext) -> Self:
        clone = copy.copy(self)
        clone.binding = binding_of(context)
        return clone

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        metadata = {"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}
        binding = self.binding
        if binding is not None and binding.workflow_id is not None:
            metadata[NAMESPACE_METADATA] = binding.namespace.encode()
            metadata[WORKFLOW_ID_METADATA] = binding.workflow_id.encode()
            associated = _bound_associated_data(
                key_id.encode(), metadata[NAMESPACE_METADATA], metadata[WORKFLOW_ID_METADATA]
            )
        else:
            associated = _unbound_associated_data(key_id.encode())
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), associated)
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            if self.refuse_plaintext:
                encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
                raise PlaintextRefusedError(
                    f"payload with encoding {encoding!r} is not encrypted{self._for()}: refused, "
                    "in production only payloads this codec encrypted are read"
                )
            return payload
        raw_key_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_key_id is None:
            raise DecryptionError(f"encrypted payload without the {KEY_ID_METADATA!r} metadata")
        key_id = raw_key_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(
                f"payload encrypted with codec key {key_id!r}, which is not configured "
                f"(known: {self.key_ids}); add it to PAY_CODEC_KEYS to read this history"
            )
        associated = self._associated_data_to_check(payload, raw_key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, associated)
        except InvalidTag as exc:
            raise DecryptionError(
                f"payload under codec key {key_id!r} failed authentication{self._for()}: "
                "it was altered, or the key with this id is not the one that encrypted it"
            ) from exc
        return Payload.FromString(plain)

    def _associated_data_to_check(self, payload: Payload, key_id: bytes) -> bytes:
        raw_namespace = payload.metadata.get(NAMESPACE_METADATA)
        raw_workflow = payload.metadata.get(WORKFLOW_ID_METADATA)
        if raw_namespace is None and raw_workflow is None:
            if self.refuse_unbound and self.binding is not None and self.binding.workflow_id:
                raise BindingError(
                    f"encrypted payload bound to no workflow{self._for()}: refused, in "
                    "production a payload must have been encrypted for the workflow that reads "
                    "it (PAY_CODEC_ACCEPT_UNBOUND=true reads history written before payloads "
                    "were bound)"
                )
            return _unbound_associated_data(key_id)
        if raw_namespace is None or raw_workflow is None:
            raise DecryptionError(
                f"encrypted payload with only one of {NAMESPACE_METADATA!r} and "
                f"{WORKFLOW_ID_METADATA!r}"
            )
        stored = Binding(
            raw_namespace.decode(errors="replace"), raw_workflow.decode(errors="replace")
        )
        expected = self.binding
        if expected is not None and not (
            expected.namespace == stored.namespace
            and (
                expected.workflow_id is None
                or expected.workflow_id == stored.workflow_id
                or _scheduled_run_of(expected.workflow_id, stored.workflow_id or "")
            )
        ):
            raise BindingError(
                f"payload encrypted for {stored.describe()} cannot be read for "
                f"{expected.describe()}: a ciphertext does not move between workflows"
            )
        # The metadata is authenticated: if it was edited to pass the check, decryption fails.
        return _bound_associated_data(key_id, raw_namespace, raw_workflow)

    def _for(self) -> str:
        return "" if self.binding is None else f" (reading for {self.binding.describe()})"
