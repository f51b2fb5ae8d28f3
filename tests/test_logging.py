"""Structured JSON logs with payment and workflow ids; card numbers, CVCs and IINs masked."""

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from config import Settings
from config.logging import (
    UVICORN_LOGGERS,
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    configure_logging,
    log_context,
    redact,
)
from tests.conftest import VISA_DECLINED, VISA_OK, card_deposit, make_iin, player_body

PAN = "4242424242424242"
AMEX = "378282246310005"  # 15 digits, Luhn-valid
IIN = make_iin()


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into a buffer, as configure_logging's handler does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.logging.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_with_a_pan_and_an_iin_comes_out_masked_as_json(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info(
        "charging card %s for player iin=%s cvc=%s",
        PAN,
        IIN,
        "123",
        extra={"payment_id": "dep_abc", "workflow_id": "deposit-dep_abc"},
    )
    (entry,) = lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == logger.name
    assert entry["timestamp"].endswith("+00:00")
    assert entry["payment_id"] == "dep_abc"
    assert entry["workflow_id"] == "deposit-dep_abc"
    raw = stream.getvalue()
    assert PAN not in raw
    assert IIN not in raw
    assert "123" not in entry["message"]
    assert "424242******4242" in entry["message"]
    assert f"********{IIN[-4:]}" in entry["message"]
    assert "cvc=***" in entry["message"]


@pytest.mark.parametrize(
    ("text", "hidden", "shown"),
    [
        (f"number {PAN}", PAN, "424242******4242"),
        ("number 4242 4242 4242 4242", "4242 4242 4242 4242", "424242******4242"),
        ("number 4242-4242-4242-4242.", "4242-4242-4242-4242", "424242******4242"),
        (f"amex {AMEX}", AMEX, "378282*****0005"),
        (f"iin {IIN}", IIN, f"********{IIN[-4:]}"),
        ('{"cvc": "123", "exp_month": 12}', '"123"', '"cvc": "***"'),
        ("{'cvv2': '4567'}", "4567", "'cvv2': '***'"),
        ("security_code=999&x=1", "999", "security_code=***"),
        (f"card={PAN}&cvc=321", "321", "cvc=***"),
    ],
)
def test_redact(text: str, hidden: str, shown: str) -> None:
    cleaned = redact(text)
    assert hidden not in cleaned
    assert shown in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "amount 500000 KZT",
        "phone +77011234567",
        "order 4242424242424241",  # 16 digits, not Luhn-valid: not a card number
        "took 1234 ms, 3 attempts",
        "deposit dep_220a6023f2e2bde39fb1c5a8",
    ],
)
def test_redact_leaves_other_numbers_alone(text: str) -> None:
    assert redact(text) == text


def test_exceptions_and_extra_fields_are_redacted_too(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    try:
        raise ValueError(f"card {PAN} refused")
    except ValueError:
        logger.exception("charge failed", extra={"request_body": f'{{"number": "{PAN}"}}'})
    (entry,) = lines(stream)
    assert "ValueError" in entry["exception"]
    assert PAN not in stream.getvalue()
    assert "424242******4242" in entry["request_body"]


def test_ids_come_from_temporal_loggers_and_log_context(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    # What temporalio's workflow and activity loggers attach to their records.
    logger.warning(
        "charge gave up",
        extra={
            "temporal_workflow": {
                "workflow_id": "deposit-dep_9",
                "run_id": "r-1",
                "workflow_type": "DepositWorkflow",
            }
        },
    )
    logger.info("activity", extra={"temporal_activity": {"workflow_id": "withdrawal-wd_7"}})
    with log_context(payment_id="dep_ctx", workflow_id="deposit-dep_ctx"):
        logger.info("inside a request")
    logger.info("outside")
    first, second, third, fourth = lines(stream)
    assert first["workflow_id"] == "deposit-dep_9"
    assert first["payment_id"] == "dep_9"
    assert first["workflow_type"] == "DepositWorkflow"
    assert "temporal_workflow" not in first
    assert second["payment_id"] == "wd_7"
    assert third["payment_id"] == "dep_ctx"
    assert third["workflow_id"] == "deposit-dep_ctx"
    assert "payment_id" not in fourth


def test_text_format_is_redacted_as_well() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pan %s", (PAN,), None)
    record.payment_id = "dep_1"
    RedactingFilter().filter(record)
    text = TextFormatter().format(record)
    assert PAN not in text
    assert "payment_id=dep_1" in text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Puts back the root and uvicorn loggers exactly as the rest of the suite left them."""
    names = ("", *UVICORN_LOGGERS)
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in names
    }
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_sends_every_logger_through_the_json_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # However uvicorn or an earlier test left them (uvicorn.Config(log_level="warning") sets the
    # levels, dictConfig may disable), configure_logging takes the loggers over.
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.WARNING)
    access.addHandler(logging.NullHandler())
    access.propagate = False
    logging.getLogger("uvicorn.error").disabled = True

    configure_logging(Settings(log_level="DEBUG"))
    access.info('%s - "POST /v1/deposits?iin=%s"', "10.0.0.1", IIN)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("worker").debug("worker polling %s", "payments")
    out = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["logger"] for e in out] == ["uvicorn.access", "uvicorn.error", "worker"]
    assert IIN not in out[0]["message"]
    assert out[2]["message"] == "worker polling payments"
    assert out[2]["level"] == "DEBUG"


def test_payment_urls_in_request_lines_give_the_payment_id(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info('%s - "%s %s HTTP/1.1" %d', "10.0.0.1", "GET", "/v1/deposits/dep_Ab12", 200)
    logger.info("unhandled error on POST /v1/withdrawals/wd_9z/approve")
    logger.info("GET /v1/deposits?player_id=pl_1")
    logger.debug("Running activity charge_card (token %r)", b"\x12\x18deposit-dep_Q7\x1a$")
    first, second, third, fourth = lines(stream)
    assert first["payment_id"] == "dep_Ab12"
    assert second["payment_id"] == "wd_9z"
    assert "payment_id" not in third
    assert fourth["payment_id"] == "dep_Q7"
    assert fourth["workflow_id"] == "deposit-dep_Q7"


# -- a real card deposit through the API and the worker, logged as in production --------------


async def test_a_card_deposit_logs_its_ids_and_never_the_card(
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
    api: httpx.AsyncClient,
    temporal_client: Client,
) -> None:
    """The API and the worker (activities included) with configure_logging's JSON handler at
    DEBUG: no line holds the PAN, the CVC or the IIN; every line an activity writes, and every
    line naming the payment, carries its payment and workflow ids."""
    configure_logging(Settings(log_level="DEBUG"))
    capsys.readouterr()
    player_iin = make_iin()
    player = await api.post("/v1/players", json=player_body(iin=player_iin))
    assert player.status_code == 201, player.text
    deposits = []
    for number in (VISA_OK, VISA_DECLINED):
        body = card_deposit(player.json()["id"], number=number)
        body["details"]["card"]["cvc"] = "987"
        created = await api.post(
            "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert created.status_code == 202, created.text
        deposit = created.json()
        await temporal_client.get_workflow_handle(deposit["workflow_id"]).result()
        assert (await api.get(f"/v1/deposits/{deposit['id']}")).status_code == 200
        deposits.append(deposit)
    logging.getLogger("uvicorn.access").info(  # what uvicorn writes for such a request
        '%s - "%s %s HTTP/1.1" %d', "10.0.0.1", "GET", f"/v1/deposits/{deposits[0]['id']}", 200
    )
    output = capsys.readouterr().err
    entries = [json.loads(line) for line in output.splitlines()]

    for secret in (VISA_OK, VISA_DECLINED, player_iin, '"987"', "cvc=987", "'987'"):
        assert secret not in output, secret
    for deposit in deposits:
        own = [e for e in entries if e.get("payment_id") == deposit["id"]]
        assert own, f"nothing logged with payment_id {deposit['id']}"
        assert any(e.get("activity_type") for e in own)  # the worker's activities
        for entry in own:
            if "workflow_id" in entry:  # the deposit's own, or one about it (its ESU report)
                assert entry["workflow_id"] in (
                    deposit["workflow_id"],
                    f"compliance-{deposit['workflow_id']}",
                ), entry
    for entry in entries:
        # The SDK's DEBUG dumps of polled tasks are not about one payment; its INFO and up are.
        sdk = entry["logger"].startswith("temporalio") and entry["level"] != "DEBUG"
        from_worker = entry.get("activity_type") or sdk
        if from_worker and str(entry.get("workflow_id", "deposit-")).startswith("deposit-"):
            assert entry.get("payment_id"), entry
            assert entry.get("workflow_id"), entry
        for deposit in deposits:
            if deposit["id"] in entry["message"]:
                assert entry.get("payment_id") == deposit["id"], entry
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert access[-1]["payment_id"] == deposits[0]["id"]
