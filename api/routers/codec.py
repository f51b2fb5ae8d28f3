"""Temporal's codec-server protocol: the Web UI and the CLI show decrypted payloads through it.

`POST /codec/decode` and `POST /codec/encode` take and return `{"payloads": [{"metadata":
{name: base64}, "data": base64}]}`, the JSON form of `temporal.api.common.v1.Payloads`. The UI
calls them from the operator's browser with an `X-Namespace` header, after a CORS preflight
answered here for the origins in `PAY_CODEC_CORS_ORIGINS` (default: the Temporal UI's URL).
The CLI works too: `temporal workflow show -w deposit-dep_... --codec-endpoint
http://localhost:8000/codec --codec-auth "Bearer <operator key>"`.

Only operator and admin keys may use it: decrypted histories show payment details. A merchant
key gets 403 problem+json at once (the CLI prints it: `Forbidden: {...}`). The Web UI cannot
send our keys, so it sends the operator session cookie instead (the UI's "include cross-origin
credentials" codec setting; `POST /v1/session` in `api.routers.session`): CORS answers allow
credentials for the configured UI origins only.

Binding. Payloads are bound to their namespace and workflow id (codec/aesgcm.py). Neither the UI
nor the CLI says which workflow a payload comes from, only the namespace (`X-Namespace`, checked
against every bound payload), so `/decode` decrypts a bound payload under the binding its own
(authenticated) metadata states: it shows what a ciphertext is, it cannot tell that the
ciphertext was moved into another workflow's history (the workers can, and refuse it). A caller
that knows the workflow sends `X-Workflow-Id` and gets that checked too. `/encode` without
`X-Workflow-Id` cannot bind, so in production it refuses (400): input typed into the UI or the
CLI (a signal, a query argument, a started workflow) would be refused by the workers anyway.

Plaintext. Workers refuse unencrypted payloads in production; `/decode` hands them back
unchanged, because the SDK writes some payloads itself without the codec (patch and local
activity markers) and refusing them would make the CLI fail on every patched workflow's history.
Echoing a payload the caller sent discloses nothing.
"""

import base64
import binascii
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from api.auth import Principal, _bearer, operator_key_or_session
from api.deps import SettingsDep
from api.errors import Problem, problem_response
from codec.aesgcm import AesGcmCodec, Binding, BindingError, CodecError, PlaintextRefusedError
from codec.converter import payload_codec
from config import Settings

logger = logging.getLogger("api.codec")

_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace, X-Workflow-Id"


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


def _check_namespace(settings: Settings, namespace: str | None) -> str:
    if namespace is not None and namespace != settings.temporal_namespace:
        raise Problem(
            400,
            "unknown_namespace",
            f"This codec serves namespace {settings.temporal_namespace!r}, not {namespace!r}",
        )
    return settings.temporal_namespace


def _codec(settings: Settings, namespace: str | None, workflow_id: str | None) -> AesGcmCodec:
    binding = Binding(_check_namespace(settings, namespace), workflow_id or None)
    return payload_codec(settings).bound_to(binding)


async def codec_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """An operator or admin key, or the operator session cookie the Web UI sends; any other
    key gets a 403 that says what the codec is for and which key it needs."""
    try:
        return await operator_key_or_session(request, credentials)
    except Problem as problem:
        if problem.status != 403:
            raise
        role = getattr(getattr(request.state, "principal", None), "role", None)
        held = f"a {role} key" if role is not None else "this key"
        raise Problem(
            403,
            "forbidden",
            f"The codec decrypts workflow payloads (payment details) for operators only: it "
            f"needs an operator or admin API key, and {held} is not one. Use an operator key "
            "with --codec-auth, or sign in to the dashboard with one",
        ) from problem


Namespace = Annotated[str | None, Header(alias="X-Namespace")]
WorkflowId = Annotated[
    str | None,
    Header(
        alias="X-Workflow-Id",
        description="The workflow the payloads belong to, when the caller knows it (the Web UI "
        "and the CLI do not send it): checked on decode, required to encode in production",
        max_length=1000,
    ),
]
OperatorDep = Annotated[Principal, Depends(codec_operator)]

_PROBLEM_CODES: dict[type[CodecError], str] = {
    PlaintextRefusedError: "unencrypted_payload",
    BindingError: "payload_of_another_workflow",
}


def _protocol_client(request: Request) -> bool:
    """The temporal CLI (or another Go SDK tool): it speaks the codec protocol (`X-Namespace`)
    and is not a browser (every browser POST carries `Origin`)."""
    return "x-namespace" in request.headers and "origin" not in request.headers


def _notice(text: str) -> Payload:
    """A readable payload standing in for one the codec will not or cannot decode."""
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


@router.post(
    "/decode",
    response_model=CodecPayloads,
    responses={
        401: {"description": "No operator key or session"},
        403: {"description": "A key that is not an operator's or an admin's"},
        422: {"description": "A payload that cannot be decrypted"},
    },
)
async def decode(
    body: CodecPayloads,
    request: Request,
    response: Response,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    namespace: Namespace = None,
    workflow_id: WorkflowId = None,
) -> CodecPayloads:
    """Decrypts payloads with whichever configured key each names; plain ones pass through.

    Refusals are problem+json (401, 403, 422), except to the temporal CLI: the Go SDK retries
    every error its codec returns until its 10 s deadline, so a refusal would only ever show as
    `context deadline exceeded`. The CLI (a request with `X-Namespace` and without `Origin`)
    gets 200 instead, each payload it may not or cannot read replaced by a JSON string saying
    why, which it prints in place of the value, and the header `X-Codec-Refused: <status>`."""
    try:
        principal = await codec_operator(request, credentials)
    except Problem as refusal:
        if refusal.status not in (401, 403) or not _protocol_client(request):
            raise
        response.headers["X-Codec-Refused"] = str(refusal.status)
        notice = _notice(f"codec refused ({refusal.status} {refusal.code}): {refusal.detail}")
        return CodecPayloads(payloads=[_from_payload(notice) for _ in body.payloads])
    codec = _codec(settings, namespace, workflow_id)
    codec.refuse_plaintext = False  # display only: see the module's docstring
    payloads = [_to_payload(i, item) for i, item in enumerate(body.payloads)]
    decoded = []
    for index, payload in enumerate(payloads):
        try:
            decoded.append(codec.decrypt(payload))
        except CodecError as exc:
            code = _PROBLEM_CODES.get(type(exc), "undecryptable_payload")
            if not _protocol_client(request):
                raise Problem(422, code, f"payloads[{index}]: {exc}") from exc
            response.headers["X-Codec-Refused"] = "422"
            decoded.append(_notice(f"codec could not decrypt ({code}): {exc}"))
    logger.info(
        "codec decode of %d payloads for key %s",
        len(payloads),
        principal.key_id,
        extra={"namespace": codec.binding.namespace if codec.binding else None},
    )
    return CodecPayloads(payloads=[_from_payload(p) for p in decoded])


@router.post("/encode", response_model=CodecPayloads)
async def encode(
    body: CodecPayloads,
    settings: SettingsDep,
    _: OperatorDep,
    namespace: Namespace = None,
    workflow_id: WorkflowId = None,
) -> CodecPayloads:
    """Encrypts with the active key for the workflow in `X-Workflow-Id`, as the workers would;
    unchanged while the codec is off. Production refuses to encrypt for no workflow."""
    codec = _codec(settings, namespace, workflow_id)
    payloads = [_to_payload(i, item) for i, item in enumerate(body.payloads)]
    if settings.payload_codec_enabled:
        if not workflow_id and settings.codec_strict:
            raise Problem(
                400,
                "workflow_id_required",
                "Payloads are bound to their workflow and the workers refuse any other: send "
                "X-Workflow-Id with the id of the workflow they are for. The Temporal Web UI "
                "and CLI cannot, so input typed there (signals, queries, workflow starts) is not "
                "accepted in production: use the API",
            )
        payloads = await codec.encode(payloads)
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
