"""Structured logs: one JSON object per line, with payment and workflow ids, never card data.

`configure_logging(settings)` is called once at the start of the worker, the API and the
simulator. Every record then goes through `RedactingFilter` (card numbers, CVCs and IINs are
masked in the message, the exception text and any `extra` string) and comes out as
`{"timestamp", "level", "logger", "message", "payment_id"?, "workflow_id"?, ...}`.

The ids come from `extra={"payment_id": ...}`, from `log_context(...)` around a block of code, or
from the `temporal_workflow` / `temporal_activity` details Temporal's loggers attach; a workflow
id like `deposit-dep_123` also gives the payment id `dep_123`. The worker runs every activity
inside `log_context` (`LogContextInterceptor`), so whatever an activity logs, httpx's request
lines to the providers included, carries its workflow and payment ids; a request line naming a
payment's URL (`GET /v1/deposits/dep_123`, uvicorn's access log, the API's error log) gives the
payment id too.
"""

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from config.settings import Settings
from domain.cards import luhn_valid

_context: ContextVar[Mapping[str, str] | None] = ContextVar("log_context", default=None)

# Runs of 12 to 19 digits, optionally grouped by single spaces or dashes ("4242 4242 ...").
_DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){11,18}(?!\d)")
_PLAIN_RUN = re.compile(r"(?<!\d)\d{12,19}(?!\d)")
# A CVC/CVV next to its field name, as JSON, a repr, a query string or prose ("cvc: 123").
_CVC = re.compile(
    r"""(?ix)
    (\b(?:cvc2?|cvv2?|cid|csc|cvn|card[_ ]?verification[_ ]?(?:code|value)|security[_ ]?code)\b
     ["']?\s*[:=]\s*["']?)
    \d{3,4}(?!\d)
    """
)
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_WORKFLOW_PAYMENT = re.compile(r"^[a-z_]+-((?:dep|wd)_[A-Za-z0-9]+)$")
_PAYMENT_PATH = re.compile(r"/v1/(?:deposits|withdrawals)/((?:dep|wd)_[A-Za-z0-9]+)")
# A payment's workflow id inside a message (the SDK's DEBUG lines quote task tokens).
_PAYMENT_ID = re.compile(r"(?<![A-Za-z0-9])((?:dep|wd)_[0-9a-f]{24})(?![A-Za-z0-9])")
_WORKFLOW_IN_TEXT = re.compile(r"(?:deposit|withdrawal)-((?:dep|wd)_[A-Za-z0-9]+)")

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    "temporal_workflow",
    "temporal_activity",
}


def mask_pan(digits: str) -> str:
    """First six and last four, as PCI DSS allows to be displayed."""
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def mask_iin(digits: str) -> str:
    return "********" + digits[-4:]


def _mask_plain(match: re.Match[str]) -> str:
    digits = match.group(0)
    if len(digits) == 12:
        return mask_iin(digits)
    return mask_pan(digits) if luhn_valid(digits) else digits


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = run.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return mask_pan(digits)
    return _PLAIN_RUN.sub(_mask_plain, run)


# A hosted checkout session's token (checkout/tokens.py), in a page's URL: a bearer capability.
_CHECKOUT_TOKEN = re.compile(r"ckt_[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """Mask Luhn-valid card numbers (13-19 digits), 12-digit IINs, CVC values and checkout
    session tokens."""
    text = _CHECKOUT_TOKEN.sub("ckt_[redacted]", text)
    text = _CVC.sub(r"\1***", text)
    return _DIGIT_RUN.sub(_mask_run, text)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Adds fields such as `payment_id` to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class RedactingFilter(logging.Filter):
    """Masks card data and IINs in the formatted message before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        return True


def _ids(record: logging.LogRecord) -> dict[str, str]:
    ids: dict[str, str] = dict(_context.get() or {})
    for attribute in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, attribute, None)
        if isinstance(details, Mapping):
            for key in ("workflow_id", "run_id", "workflow_type", "activity_type", "activity_id"):
                value = details.get(key)
                if value is not None:
                    ids[key] = str(value)
    for key in ("payment_id", "workflow_id"):
        value = getattr(record, key, None)
        if value is not None:
            ids[key] = str(value)
    if "payment_id" not in ids and "workflow_id" in ids:
        payment_id = payment_id_of(ids["workflow_id"])
        if payment_id:
            ids["payment_id"] = payment_id
    if "payment_id" not in ids:
        message = record.getMessage()
        found = _PAYMENT_PATH.search(message)
        if found:
            ids["payment_id"] = found.group(1)
        elif found := _WORKFLOW_IN_TEXT.search(message):
            ids["payment_id"] = found.group(1)
            ids.setdefault("workflow_id", found.group(0))
        elif len(named := set(_PAYMENT_ID.findall(message))) == 1:
            # e.g. an SDK line quoting a ledger key `deposit:dep_…:credit`: one payment named.
            ids["payment_id"] = named.pop()
    return ids


def payment_id_of(workflow_id: str) -> str | None:
    """`dep_123` of `deposit-dep_123`; None for workflows that are not a payment's."""
    found = _WORKFLOW_PAYMENT.match(workflow_id)
    return found.group(1) if found else None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(_ids(record))
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in entry:
                entry[key] = _clean(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = _ids(record)
        text = super().format(record)
        if ids:
            text += " " + " ".join(f"{k}={v}" for k, v in sorted(ids.items()))
        return redact(text)


def configure_logging(settings: Settings) -> None:
    """Route every logger (uvicorn's too, when started with `log_config=None`) to one handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Whatever configured these before (uvicorn.Config sets their levels and handlers, a
    # dictConfig may disable them), they now defer to the root logger and its level.
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or None
        with log_context(
            workflow_id=workflow_id,
            payment_id=payment_id_of(workflow_id) if workflow_id else None,
            activity_type=info.activity_type,
        ):
            return await super().execute_activity(input)


class LogContextInterceptor(Interceptor):
    """Runs every activity inside `log_context(workflow_id=..., payment_id=...)`, so that any
    logger used under it (httpx, SQLAlchemy, our own) writes the payment's ids. Workflow code
    logs through `workflow.logger`, which attaches them itself."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(super().intercept_activity(next))
