"""The one place that decides how payloads are converted: worker, API client and replayers.

Pydantic models travel as JSON (`pydantic_data_converter`); with the codec on, every payload is
then AES-GCM encrypted and bound to its namespace and workflow id (the SDK's serialization
context), and failure messages and stack traces are moved into an encrypted payload too (they
can quote inputs). In production (`Settings.codec_strict`) decoding refuses payloads that are
not encrypted or not bound to the workflow reading them. Search attributes are never
encrypted: they hold no personal data (workflows/search_attributes.py).
"""

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from codec.aesgcm import AesGcmCodec, decode_key
from config import Settings


def payload_codec(settings: Settings) -> AesGcmCodec:
    """The codec for the configured keys, whether or not the converter uses it. Not bound to a
    workflow: the SDK binds a copy to each workflow through its serialization context."""
    return AesGcmCodec(
        {key_id: decode_key(key.get_secret_value()) for key_id, key in settings.codec_keys.items()},
        settings.codec_active_key,
        refuse_plaintext=settings.codec_strict,
        refuse_unbound=settings.codec_strict and not settings.codec_accept_unbound,
    )


def data_converter(settings: Settings) -> DataConverter:
    if not settings.payload_codec_enabled:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=payload_codec(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
