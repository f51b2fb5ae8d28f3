"""Temporal's codec-server protocol: the Web UI and the CLI show decrypted payloads through it.

`POST /codec/decode` and `POST /codec/encode` take and return `{"payloads": [{"metadata":
{name: base64}, "data": base64}]}`, the JSON form of `temporal.api.common.v1.Payloads`. The UI
calls them from the operator's browser with an `X-Namespace` header, after a CORS preflight
answered here for the origins in `PAY_CODEC_CORS_ORIGINS` (default: the Temporal UI's URL).
The CLI works too: `temporal workflow show -w deposit-dep_... --codec-endpoint
http://localhost:8000/codec --codec-auth "Bearer <operator key>"`.

Only operator and admin keys may use it: decrypted histories show payment details. The Web UI
cannot send our keys, so it sends the operator session cookie instead
(`TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true`; `POST /v1/session` in `api.routers.session`): CORS
answers allow credentials for the configured UI origins only.
"""

import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from api.auth import Principal, operator_key_or_session
from api.deps import SettingsDep
from api.errors import Problem, problem_response
from codec.aesgcm import CodecError
from codec.converter import payload_codec
from config import Settings

logger = logging.getLogger("api.codec")

_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


def _cors_headers(request: Request, settings: Settings) -> dict[str, str]:
    origin = request.headers.get("origin")
    allowed = settings.codec_cors_origins or [settings.temporal_web_url]
    if origin is None or origin not in allowed:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


class _CorsRoute(APIRoute):
    """Adds the CORS headers to every answer, errors included, so the UI can show them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except Problem as exc:
                response = problem_response(exc)
            response.headers.update(_cors_headers(request, request.app.state.payments.settings))
            return response

        return with_cors


router = APIRouter(prefix="/codec", tags=["codec"], route_class=_CorsRoute)


class CodecPayload(BaseModel):
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Metadata values, base64", examples=[{"encoding": ""}]
    )
    data: str = Field(default="", description="The payload's bytes, base64")


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload]


def _b64decode(value: str, where: str) -> bytes:
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Problem(400, "invalid_payload", f"{where} is not valid base64") from exc


def _to_payload(index: int, item: CodecPayload) -> Payload:
    return Payload(
        metadata={
            name: _b64decode(value, f"payloads[{index}].metadata.{name}")
            for name, value in item.metadata.items()
        },
        data=_b64decode(item.data, f"payloads[{index}].data"),
    )


def _from_payload(payload: Payload) -> CodecPayload:
    return CodecPayload(
        metadata={
            name: base64.b64encode(value).decode() for name, value in payload.metadata.items()
        },
        data=base64.b64encode(payload.data).decode(),
    )


def _check_namespace(settings: Settings, namespace: str | None) -> None:
    if namespace is not None and namespace != settings.temporal_namespace:
        raise Problem(
            400,
            "unknown_namespace",
            f"This codec serves namespace {settings.temporal_namespace!r}, not {namespace!r}",
        )


Namespace = Annotated[str | None, Header(alias="X-Namespace")]
# An operator or admin key, or the operator session cookie the Web UI sends.
OperatorDep = Annotated[Principal, Depends(operator_key_or_session)]


@router.post("/decode", response_model=CodecPayloads)
async def decode(
    body: CodecPayloads,
    settings: SettingsDep,
    principal: OperatorDep,
    namespace: Namespace = None,
) -> CodecPayloads:
    """Decrypts payloads with whichever configured key each names; plain ones pass through."""
    _check_namespace(settings, namespace)
    payloads = [_to_payload(i, item) for i, item in enumerate(body.payloads)]
    try:
        decoded = await payload_codec(settings).decode(payloads)
    except CodecError as exc:
        raise Problem(422, "undecryptable_payload", str(exc)) from exc
    logger.info(
        "codec decode of %d payloads for key %s",
        len(payloads),
        principal.key_id,
        extra={"namespace": namespace or settings.temporal_namespace},
    )
    return CodecPayloads(payloads=[_from_payload(p) for p in decoded])


@router.post("/encode", response_model=CodecPayloads)
async def encode(
    body: CodecPayloads,
    settings: SettingsDep,
    _: OperatorDep,
    namespace: Namespace = None,
) -> CodecPayloads:
    """Encrypts with the active key, as the workers would; unchanged while the codec is off."""
    _check_namespace(settings, namespace)
    payloads = [_to_payload(i, item) for i, item in enumerate(body.payloads)]
    if settings.payload_codec_enabled:
        payloads = await payload_codec(settings).encode(payloads)
    return CodecPayloads(payloads=[_from_payload(p) for p in payloads])


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    """The browser's CORS preflight: no credentials are sent with it, so none are asked for."""
    headers = {
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
    }
    if not _cors_headers(request, settings):
        headers = {}
    return Response(status_code=204, headers=headers)
