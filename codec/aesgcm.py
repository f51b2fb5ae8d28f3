"""AES-256-GCM payload codec with key ids, so keys can be rotated without losing history.

Every payload leaving the process is serialized, encrypted with the active key and replaced by a
`binary/encrypted` payload whose metadata names the key id. Decryption picks the key by that id,
so payloads written under an older key stay readable as long as the key is still configured.
The key id and encoding are authenticated (AES-GCM associated data): moving a ciphertext under
another key id, or changing a single byte, fails decryption instead of yielding garbage.
"""

import base64
import binascii
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload cannot be decrypted; the message says why and what to configure."""


class UnknownKeyError(CodecError):
    pass


class DecryptionError(CodecError):
    pass


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


def _associated_data(key_id: str) -> bytes:
    return ENCODING + b"\x00" + key_id.encode()


class AesGcmCodec(PayloadCodec):
    """Encrypts with `active_key_id`; decrypts with whichever configured key a payload names.

    Payloads that are not encrypted (written before the codec was turned on) pass through
    decoding unchanged, so turning encryption on does not strand running workflows.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
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

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(key_id)
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
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
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated_data(key_id))
        except InvalidTag as exc:
            raise DecryptionError(
                f"payload under codec key {key_id!r} failed authentication: "
                "it was altered, or the key with this id is not the one that encrypted it"
            ) from exc
        return Payload.FromString(plain)
