# ruff: noqa: RUF001 - the reports and statements are written in Russian
"""The providers' daily reports and the bank's statements: each format read from hand-written
files (tests/fixtures/reports, written from the formats' descriptions, never by the code under
test), hostile and malformed input refused, and reports fetched over each provider's API from
the simulator: one provider's day after real deposits, refunds and payouts through the stack,
with every misbehaviour knob, a corrected report and chargebacks; the bank's statement with
messy purposes and the providers' settlements."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from db.models import Deposit
from domain.recon.lines import ReportHeader, ReportLine
from domain.roles import Role
from providers.errors import ProviderRejected
from providers.registry import provider_http_client
from providers.reports import (
    ReportFetching,
    ReportFormatError,
    StatementFetching,
    parse_report,
    report_client,
    report_formats,
    settlement_accounts,
    settlement_iban,
)
from tests.conftest import _client, _result, card_deposit, deposit_and_wait, new_player
from tests.test_connectors_end_to_end import only
from tests.test_gateway import _at_provider, _create, _deposit, _finish
from tests.test_withdrawals import fund, iban_withdrawal, wager
from worker import build_worker

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
DAY = date(2026, 11, 27)


def at(text: str) -> datetime:
    """A UTC time written as `YYYY-MM-DD HH:MM:SS`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def parsed(fmt: str, name: str, provider: str) -> tuple[ReportHeader, list[ReportLine]]:
    with (FIXTURES / name).open("rb") as source:
        header, lines = parse_report(fmt, source, provider)
        return header, list(lines)


def line(**fields: Any) -> ReportLine:
    defaults: dict[str, Any] = {"provider_id": None, "currency": "KZT", "fee_minor": 0}
    return ReportLine(**{**defaults, **fields})


# -- each format, from hand-written files -------------------------------------------------------


def test_every_connector_type_has_a_format() -> None:
    assert report_formats() == {
        "halyk_epay.csv",
        "freedom_pay.csv",
        "freedom_pay_wallet.jsonl",
        "cloudpayments.jsonl",
        "kaspi.csv",
        "ioka.jsonl",
        "camt.053",
        "kazbank.csv",
    }


def test_halyk_epay_csv() -> None:
    header, lines = parsed("halyk_epay.csv", "halyk_epay.csv", "halyk")
    assert header == ReportHeader(
        provider="halyk",
        business_date=DAY,
        currency="KZT",
        net_settled_minor=667_750,
        settlement_date=date(2026, 11, 28),
        format="halyk_epay.csv",
    )
    paid = "dep_0a1b2c3d4e5f60718293a4b5"
    assert lines == [
        # five seconds after midnight in Almaty is the day before in UTC
        line(
            line_no=1,
            kind="payment",
            reference=paid,
            provider_id="3f1c0e6a-0001",
            amount_minor=500_000,
            fee_minor=7_500,
            occurred_at=at("2026-11-26 19:00:05"),
        ),
        line(
            line_no=2,
            kind="payment",
            reference="dep_1111aaaa2222bbbb3333cccc",
            provider_id="3f1c0e6a-0002",
            amount_minor=250_050,
            fee_minor=3_751,
            occurred_at=at("2026-11-27 08:45:10"),
        ),
        line(
            line_no=3,
            kind="refund",
            reference=paid,
            provider_id="3f1c0e6a-0003",
            amount_minor=70_000,
            occurred_at=at("2026-11-27 13:20:00"),
        ),
        line(
            line_no=4,
            kind="chargeback",
            reference="dep_9f8e7d6c5b4a39281706f5e4",
            provider_id="3f1c0e6a-0004",
            amount_minor=49,
            fee_minor=1_000,
            occurred_at=at("2026-11-27 18:59:59"),
        ),
    ]
    net = sum((1 if x.kind == "payment" else -1) * x.amount_minor - x.fee_minor for x in lines)
    assert net == header.net_settled_minor


def test_freedom_pay_csv() -> None:
    header, lines = parsed("freedom_pay.csv", "freedom_pay.csv", "freedom")
    assert (header.business_date, header.settlement_date) == (DAY, date(2026, 11, 29))
    assert header.net_settled_minor == -150_000  # payouts above payments: Freedom takes it
    assert [(x.line_no, x.kind, x.reference, x.amount_minor) for x in lines] == [
        (1, "payment", "dep_aa01", 100_000),
        (2, "payout", "wd_bb02", 250_000),
        (3, "refund", "dep_aa01", 1),
        (4, "chargeback_reversal", "dep_cc03", 1),
    ]
    assert lines[0].provider_id == "728301945"
    assert lines[1].occurred_at == at("2026-11-27 06:30:00")


def test_freedom_pay_wallet_jsonl() -> None:
    header, lines = parsed("freedom_pay_wallet.jsonl", "freedom_pay_wallet.jsonl", "freedom_wallet")
    assert (header.net_settled_minor, header.currency) == (980_000, "KZT")
    assert lines == [
        line(
            line_no=1,
            kind="payment",
            reference="dep_wallet_01",
            provider_id="519000123",
            amount_minor=1_000_000,
            fee_minor=20_000,
            occurred_at=at("2026-11-27 04:15:00"),
        )
    ]


def test_cloudpayments_jsonl_reads_numbers_exactly() -> None:
    header, lines = parsed("cloudpayments.jsonl", "cloudpayments.jsonl", "cloudpayments")
    assert header.net_settled_minor == 485_010
    assert [(x.kind, x.reference, x.amount_minor, x.fee_minor) for x in lines] == [
        ("payment", "dep_cp_01", 500_010, 15_000),
        ("payout", "wd_cp_02", 100_000, 0),  # an integer number of tenge
        ("chargeback_reversal", "dep_cp_00", 100_000, 0),
    ]
    assert lines[0].provider_id == "891234"
    assert lines[0].occurred_at == at("2026-11-27 15:00:00")


def test_kaspi_csv() -> None:
    header, lines = parsed("kaspi.csv", "kaspi.csv", "kaspi_qr")
    assert (header.net_settled_minor, header.settlement_date) == (1_200_000, date(2026, 11, 30))
    assert [(x.kind, x.reference, x.provider_id, x.amount_minor) for x in lines] == [
        ("payment", "dep_kaspi_01", "700123456789", 1_500_000),
        ("refund", "dep_kaspi_01", "700123456790", 300_000),
    ]


def test_ioka_jsonl_keeps_a_duplicate_apart_by_line_number() -> None:
    header, lines = parsed("ioka.jsonl", "ioka.jsonl", "ioka")
    assert header.net_settled_minor == 980_000
    first, second = lines
    assert (first.line_no, second.line_no) == (1, 2)
    # the same line twice (one time with its offset, one in UTC): a duplicate for the matcher
    assert first.occurred_at == second.occurred_at == at("2026-11-27 07:00:00")
    assert (first.reference, first.amount_minor, first.fee_minor) == (
        "dep_ioka_01",
        500_000,
        10_000,
    )


def test_an_amount_with_three_decimals_is_refused_not_rounded() -> None:
    with pytest.raises(ReportFormatError, match=r"5000\.005"):
        parsed("halyk_epay.csv", "halyk_epay_three_decimals.csv", "halyk")


def test_a_json_number_beyond_two_decimals_never_becomes_a_float() -> None:
    with pytest.raises(ReportFormatError, match="Amount"):
        parsed("cloudpayments.jsonl", "cloudpayments_float.jsonl", "cloudpayments")


def test_a_registry_cut_short_is_refused() -> None:
    with (FIXTURES / "freedom_pay_truncated.csv").open("rb") as source:
        header, lines = parse_report("freedom_pay.csv", source, "freedom")
        assert header.net_settled_minor == 100_000
        first = next(lines)  # lines are read as they are asked for
        assert first.reference == "dep_aa01"
        with pytest.raises(ReportFormatError, match="without its T record"):
            list(lines)


def test_a_malformed_report_names_its_line() -> None:
    bad = (FIXTURES / "freedom_pay.csv").read_bytes().replace(b"payout", b"payoff")
    with pytest.raises(ReportFormatError, match="row 3: unknown operation 'payoff'"):
        list(parse_report("freedom_pay.csv", BytesIO(bad), "freedom")[1])
    with pytest.raises(ReportFormatError, match="unknown report format"):
        parse_report("swift.mt940", BytesIO(b""), "kazbank")


# -- the bank's statement -----------------------------------------------------------------------


def test_camt053_statement_with_messy_purposes() -> None:
    with (FIXTURES / "kazbank_camt053.xml").open("rb") as source:
        header, lines = parse_report("camt.053", source, "kazbank")
        assert header == ReportHeader(
            provider="kazbank",
            business_date=DAY,
            currency="KZT",
            net_settled_minor=1_323_983,  # closing less opening balance
            settlement_date=None,
            format="camt.053",
        )
        found = list(lines)
    assert [(x.line_no, x.kind, x.reference, x.amount_minor) for x in found] == [
        (1, "transfer_in", None, 500_000),
        (2, "transfer_in", None, 250_000),
        (3, "transfer_in", None, 77_777),
        (4, "settlement_in", "halyk:2026-11-26", 667_750),  # its end-to-end id
        (5, "settlement_in", "freedom:2026-11-26", 123_456),  # the date in its purpose
        (6, "transfer_out", "wd_0123456789abcdef", 300_000),
        (7, "transfer_in", "dep_9f8e7d6c5b4a39281706f5e4", 5_000),  # a structured reference
    ]  # the pending entry is not booked: left out
    first, second, third = found[:3]
    assert first.purpose == "Пополнение счета по заказу  dep_0A1B2C3D4E5F60718293A4B5  спасибо"
    assert (first.payer_name, first.payer_iin, first.payer_iban) == (
        "ТУЛЕГЕНОВА АЙГЕРИМ",
        "900101300123",
        "KZ496010000000012345",
    )
    assert first.provider_id == "KZB-000101"
    assert first.occurred_at == at("2026-11-27 04:12:40")
    # a purpose split over two Ustrd parts is read whole
    assert second.purpose == "за игру, номер: DEP 1111aaaa2222bbbb3333cccc (второй перевод)"
    assert (second.payer_name, second.payer_iin) == ("Serik B.", None)
    # the older layout: Nm right under Dbtr, Sts as text, a booking date without a time
    assert (third.payer_name, third.provider_id) == ("ИП Ахметов", "KZB-000103")
    assert third.occurred_at == at("2026-11-26 19:00:00")
    assert found[4].payer_iban == "KZ439989247007805180"  # written with spaces
    assert found[5].purpose == "Выплата выигрыша wd_0123456789abcdef"
    assert found[5].payer_name is None  # a debit has no payer
    assert found[6].purpose == "<dep_9F8E7D6C5B4A39281706F5E4> & co"
    assert found[6].payer_name == "Tom & Jerry LLP"


def test_kazbank_csv_statement() -> None:
    header, found = parsed("kazbank.csv", "kazbank.csv", "kazbank")
    assert (header.business_date, header.net_settled_minor) == (DAY, -50_000)
    assert [(x.kind, x.reference, x.amount_minor) for x in found] == [
        ("transfer_in", None, 200_000),
        ("settlement_in", "ioka:2026-11-26", 100_000),
        ("transfer_out", "wd_77", 350_000),
    ]
    assert found[0].purpose == 'Оплата; заказ №dep_abc123 "срочно"'
    assert (found[0].payer_name, found[0].payer_iin) == ("Айгерим Т.", "900101300123")


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_hostile_xml_is_refused(name: str) -> None:
    with (FIXTURES / name).open("rb") as source:
        with pytest.raises(ReportFormatError, match="refused"):
            parse_report("camt.053", source, "kazbank")
        source.seek(0)
        assert b"<!DOCTYPE" in source.read()  # it was refused for its DTD, before any entity


def test_xml_that_is_not_a_statement_is_refused() -> None:
    with pytest.raises(ReportFormatError, match=r"not a camt\.053"):
        parse_report("camt.053", BytesIO(b"<Document xmlns='urn:other'/>"), "kazbank")
    with pytest.raises(ReportFormatError, match="not well-formed"):
        parse_report("camt.053", BytesIO(b"<Document"), "kazbank")


def test_the_statement_is_read_as_a_stream() -> None:
    """A statement of many entries is read one entry at a time: each entry is dropped from the
    tree once read (the parser keeps nothing but the statement element)."""
    head = (FIXTURES / "kazbank_camt053.xml").read_text(encoding="utf-8")
    start, end = head.index("<Ntry>"), head.index("</Stmt>")
    entry = head[start : head.index("</Ntry>") + len("</Ntry>")]
    many = head[:start] + entry * 20_000 + head[end:]
    _, lines = parse_report("camt.053", BytesIO(many.encode()), "kazbank")
    assert sum(1 for _ in lines) == 20_000


# -- over the providers' APIs, from the simulator -----------------------------------------------


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator_url, timeout=30) as client:
        yield client
        await client.post("/admin/reset")


def today() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Almaty")).date()


PROVIDERS = ["halyk", "freedom", "freedom_wallet", "cloudpayments", "kaspi_qr", "ioka"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_each_providers_report_over_its_own_api(
    provider: str, settings: Settings, sim: httpx.AsyncClient
) -> None:
    """Lines written by the simulator in each format come back the same through the platform's
    report client (the provider's authentication, its request, its format)."""
    day = date(2026, 1, 15)  # a day of its own: nothing else happened on it
    extra = [
        {"reference": f"dep_{provider}_x1", "amount": 123_45, "business_date": day.isoformat()},
        {
            "reference": f"wd_{provider}_x2",
            "kind": "payout",
            "amount": 1_000_00,
            "business_date": day.isoformat(),
        },
    ]
    behaviour = {"extra_lines": extra, "fee_bps": 100, "payout_fee_bps": 50}
    put = await sim.put(f"/admin/providers/{provider}/report-behaviour", json=behaviour)
    assert put.status_code == 200, put.text
    async with provider_http_client(settings) as http:
        client = report_client(settings, http, provider)
        assert isinstance(client, ReportFetching)
        header, lines = await client.fetch_report(day)
        found = list(lines)
    assert (header.provider, header.business_date, header.currency) == (provider, day, "KZT")
    assert header.settlement_date == date(2026, 1, 16)
    assert [(x.kind, x.reference, x.amount_minor, x.fee_minor) for x in found] == [
        ("payment", f"dep_{provider}_x1", 123_45, 123),
        ("payout", f"wd_{provider}_x2", 1_000_00, 5_00),  # 0.5% of 1000.00
    ]
    assert header.net_settled_minor == 123_45 - 123 - 1_000_00 - 5_00
    assert found[0].occurred_at == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)  # noon in Almaty


async def test_a_report_asked_with_wrong_credentials_is_refused(settings: Settings) -> None:
    wrong = settings.model_copy(
        update={"provider_secrets": {**settings.provider_secrets, "ioka": SecretStr("not-the-key")}}
    )
    async with provider_http_client(wrong) as http:
        client = report_client(wrong, http, "ioka")
        assert isinstance(client, ReportFetching)
        with pytest.raises(ProviderRejected):
            await client.fetch_report(DAY)


@pytest.fixture
async def freedom_stack(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Settings]]:
    """Merchant and operator clients of an API (and its worker) taking cards through Freedom
    Pay, which also pays out to cards."""
    configured = only(settings, "freedom", f"reports-{uuid.uuid4().hex[:8]}")
    app: FastAPI = create_app(configured)
    async with (
        provider_http_client(configured) as http,
        build_worker(temporal_env.client, configured, sessions=sessions, http=http),
        app.router.lifespan_context(app),
    ):
        app.state.payments._temporal = temporal_env.client
        async with (
            _client(app, api_keys[Role.MERCHANT]) as merchant,
            _client(app, api_keys[Role.OPERATOR]) as operator,
        ):
            yield merchant, operator, configured


async def _card_token(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> str:
    async with sessions() as session:
        deposit = await session.get_one(Deposit, deposit_id)
        assert deposit.card is not None
        return str(deposit.card["tokens"]["freedom"])


async def _report(settings: Settings, provider: str, day: date) -> tuple[ReportHeader, list[Any]]:
    async with provider_http_client(settings) as http:
        client = report_client(settings, http, provider)
        assert isinstance(client, ReportFetching)
        header, lines = await client.fetch_report(day)
        return header, list(lines)


async def _hash(settings: Settings, provider: str, day: date) -> str:
    async with provider_http_client(settings) as http:
        client = report_client(settings, http, provider)
        assert isinstance(client, ReportFetching)
        return (await client.download_report(day, BytesIO())).sha256


async def test_a_providers_day_through_the_stack_and_every_way_its_report_goes_wrong(
    freedom_stack: tuple[httpx.AsyncClient, httpx.AsyncClient, Settings],
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    sim: httpx.AsyncClient,
) -> None:
    merchant, operator, settings = freedom_stack
    client = temporal_env.client
    day = today()
    fee = {"fee_bps": 250}
    await sim.put("/admin/providers/freedom/report-behaviour", json=fee)

    # A deposit, a partial refund of it, and a card payout, through the stack.
    player = await new_player(merchant)
    deposit = await deposit_and_wait(merchant, client, card_deposit(player, 300_000_00))
    assert (deposit["status"], deposit["provider"]) == ("succeeded", "freedom"), deposit
    refund = await operator.post(
        f"/v1/deposits/{deposit['id']}/refunds",
        json={"amount": 50_000_00, "reason": "player asked"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status_code == 202, refund.text
    await _result(client.get_workflow_handle(refund.json()["workflow_id"]))
    for _ in range(2):  # played through (more than deposited): no low-turnover review
        await wager(sessions, player, 200_000_00)
    token = await _card_token(sessions, deposit["id"])
    created = await merchant.post(
        "/v1/withdrawals",
        json={
            "player_id": player,
            "amount": 100_000_00,
            "currency": "KZT",
            "method": "card",
            "destination": {"card_token": token},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert created.status_code == 202, created.text
    withdrawal = created.json()
    await _result(client.get_workflow_handle(withdrawal["workflow_id"]))
    paid = (await merchant.get(f"/v1/withdrawals/{withdrawal['id']}")).json()
    assert paid["status"] == "paid", paid

    header, lines = await _report(settings, "freedom", day)
    mine = [x for x in lines if x.reference in (deposit["id"], withdrawal["id"])]
    assert [(x.kind, x.reference, x.amount_minor, x.fee_minor) for x in mine] == [
        ("payment", deposit["id"], 300_000_00, 7_500_00),
        ("refund", deposit["id"], 50_000_00, 0),
        ("payout", withdrawal["id"], 100_000_00, 0),
    ]
    assert all(x.provider_id for x in mine)
    assert header.net_settled_minor == sum(
        (1 if x.kind in ("payment", "chargeback_reversal") else -1) * x.amount_minor - x.fee_minor
        for x in lines
    )
    assert header.settlement_date == date.fromordinal(day.toordinal() + 1)
    clean = await _hash(settings, "freedom", day)
    assert await _hash(settings, "freedom", day) == clean  # the same report, the same bytes

    # A chargeback on the deposit, and its reversal: in the report at once.
    raised = await sim.post(
        "/admin/providers/freedom/chargebacks",
        json={"reference": deposit["id"], "amount": 20_000_00},
    )
    assert raised.status_code == 201, raised.text
    too_much = await sim.post(
        "/admin/providers/freedom/chargebacks",
        json={"reference": deposit["id"], "amount": 300_000_00},
    )
    assert too_much.status_code == 409
    reversed_ = await sim.post(
        f"/admin/providers/freedom/chargebacks/{deposit['id']}/reversal", json={}
    )
    assert reversed_.status_code == 201, reversed_.text
    _, lines = await _report(settings, "freedom", day)
    disputes = [(x.kind, x.amount_minor) for x in lines if x.kind.startswith("chargeback")]
    assert disputes[-2:] == [("chargeback", 20_000_00), ("chargeback_reversal", 20_000_00)]

    # Every way the report can be wrong.
    wrong = {
        **fee,
        "missing": [withdrawal["id"]],
        "duplicated": [deposit["id"]],
        "amount_delta": {deposit["id"]: 1},
        "fee_delta": {deposit["id"]: 10_00},
        "currency": {deposit["id"]: "USD"},
        "extra_lines": [{"reference": "dep_never_seen", "amount": 777_00}],
        "net_delta_minor": -5_00,
    }
    put = await sim.put("/admin/providers/freedom/report-behaviour", json=wrong)
    assert put.status_code == 200, put.text
    header, lines = await _report(settings, "freedom", day)
    assert withdrawal["id"] not in {x.reference for x in lines}
    payments = [x for x in lines if x.reference == deposit["id"] and x.kind == "payment"]
    assert len(payments) == 2  # duplicated
    assert {(x.amount_minor, x.fee_minor, x.currency) for x in payments} == {
        (300_000_01, 7_500_00 + 10_00, "USD")
    }
    assert lines[-1].reference == "dep_never_seen"
    lines_net = sum(
        (1 if x.kind in ("payment", "chargeback_reversal") else -1) * x.amount_minor - x.fee_minor
        for x in lines
    )
    assert header.net_settled_minor == lines_net - 5_00

    # The corrected report: the behaviour put right, the next revision issued.
    await sim.put("/admin/providers/freedom/report-behaviour", json=fee)
    reissued = await sim.post(f"/admin/providers/freedom/reports/{day.isoformat()}/reissue")
    assert reissued.json()["revision"] == 2
    corrected = await _hash(settings, "freedom", day)
    assert corrected != clean  # a new revision (and the chargebacks since)
    _, lines = await _report(settings, "freedom", day)
    assert [x.kind for x in lines if x.reference == withdrawal["id"]] == ["payout"]

    # The same report as a file, for an upload.
    file = await sim.get(f"/admin/providers/freedom/reports/{day.isoformat()}")
    assert file.status_code == 200
    assert file.headers["X-Report-File"].endswith(f"freedom-{day.isoformat()}-r2.csv")
    header, file_lines = parse_report("freedom_pay.csv", BytesIO(file.content), "freedom")
    assert [x.reference for x in file_lines] == [x.reference for x in lines]

    # The bank's statement of the day: messy transfers, the payout by the bank, and Freedom's
    # settlement of the day (paid the same day here).
    await sim.put(
        "/admin/providers/freedom/report-behaviour", json={**fee, "settlement_delay_days": 0}
    )
    order = await merchant.post(
        "/v1/deposits",
        json={
            "player_id": player,
            "amount": 12_345_00,
            "currency": "KZT",
            "method": "bank_transfer",
            "details": {},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert order.status_code == 202, order.text
    reference = order.json()["id"]
    opened = await sim.get(f"/admin/providers/kazbank/payments/{reference}", params={"wait": 20})
    assert opened.json()["payment"], opened.text
    messy = f"  оплата   по счёту №{reference.upper()}, спасибо!! "
    lines_in = [
        {
            "amount": 12_000_00,
            "purpose": messy,
            "payer_name": "ТУЛЕГЕНОВА А.",
            "payer_iin": "900101300123",
            "payer_iban": "KZ496010000000012345",
        },
        {"amount": 345_00, "purpose": "доплата " + reference.replace("_", " _")},
        {"amount": 50_00, "purpose": "просто перевод", "payer_name": "Неизвестный"},
    ]
    for body in lines_in:
        credited = await sim.post("/admin/providers/kazbank/statement-lines", json=body)
        assert credited.status_code == 201, credited.text
    # The bank's payout: a player of its own, whose money came by no instrument the closed loop
    # would send it back to (credited straight to the ledger, played through).
    payee = await new_player(merchant)
    await fund(sessions, payee, 50_000_00, wagered=True)
    bank_out = await merchant.post(
        "/v1/withdrawals",
        json=iban_withdrawal(payee, 20_000_00),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert bank_out.status_code == 202, bank_out.text
    approved = await operator.post(  # a new destination is reviewed by a person
        f"/v1/withdrawals/{bank_out.json()['id']}/approve", json={"reason": "checked"}
    )
    assert approved.status_code == 200, approved.text
    await _result(client.get_workflow_handle(bank_out.json()["workflow_id"]))
    out_id = bank_out.json()["id"]

    freedom_header, _ = await _report(settings, "freedom", day)
    accounts = settlement_accounts(settings)
    assert accounts[settlement_iban("freedom")] == "freedom"
    for fmt in ("camt.053", "kazbank.csv"):
        async with provider_http_client(settings) as http:
            bank = report_client(settings, http, "kazbank")
            assert isinstance(bank, StatementFetching)
            statement, entries = await bank.fetch_statement(day, fmt, settlement_accounts=accounts)
            found = list(entries)
        assert (statement.business_date, statement.format) == (day, fmt)
        transfers = [x for x in found if x.kind == "transfer_in"]
        by_purpose = {x.purpose: x for x in transfers}
        first = by_purpose[messy.strip()]
        assert (first.amount_minor, first.payer_iin, first.payer_name) == (
            12_000_00,
            "900101300123",
            "ТУЛЕГЕНОВА А.",
        )
        assert first.reference is None  # found in the purpose by the matcher, not here
        assert any(x.amount_minor == 50_00 and x.payer_name == "Неизвестный" for x in transfers)
        assert any(x.amount_minor == 345_00 for x in transfers)
        # Freedom's net for the day credited from its settlement IBAN, or, on a day its
        # payouts outweigh its payments (the session's other card payouts), taken back.
        net = freedom_header.net_settled_minor
        settled = [
            x
            for x in found
            if x.kind == ("settlement_in" if net >= 0 else "transfer_out")
            and (x.reference or "").startswith("freedom")
        ]
        assert [(x.reference, x.amount_minor) for x in settled] == [
            (f"freedom:{day.isoformat()}", abs(net))
        ]
        outgoing = [x for x in found if x.kind == "transfer_out"]
        assert [(x.reference, x.amount_minor) for x in outgoing if x.reference == out_id] == [
            (out_id, 20_000_00)
        ]
        total = sum(
            x.amount_minor if x.kind in ("transfer_in", "settlement_in") else -x.amount_minor
            for x in found
        )
        assert statement.net_settled_minor == total


# provider, method, deposit details, how the player pays on the simulator's page (None: a card)
EVERY_PROVIDER: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("halyk", "card", {}, None),
    ("freedom", "card", {}, None),
    ("cloudpayments", "card", {}, None),
    ("kaspi_qr", "qr", {}, "confirm"),
    ("ioka", "aggregator", {"return_url": "https://casino.example/back"}, "confirm"),
    ("freedom_wallet", "ewallet", {"wallet_account": "+77011234567"}, "confirm"),
]


@pytest.mark.parametrize(
    ("provider", "method", "details", "pay"),
    [pytest.param(p, m, d, a, id=p) for p, m, d, a in EVERY_PROVIDER],
)
async def test_each_providers_report_shows_a_deposit_and_its_refund(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
    sim: httpx.AsyncClient,
    provider: str,
    method: str,
    details: dict[str, Any],
    pay: str | None,
) -> None:
    """However a connector keeps its payments and refunds, its report has them: a payment when
    the money was taken (Halyk: captured), a refund when it went back."""
    configured = only(settings, provider, f"reports-{uuid.uuid4().hex[:8]}")
    app: FastAPI = create_app(configured)
    async with (
        provider_http_client(configured) as http,
        build_worker(temporal_env.client, configured, sessions=sessions, http=http),
        app.router.lifespan_context(app),
    ):
        app.state.payments._temporal = temporal_env.client
        async with (
            _client(app, api_keys[Role.MERCHANT]) as merchant,
            _client(app, api_keys[Role.OPERATOR]) as operator,
        ):
            player = await new_player(merchant)
            body = (
                card_deposit(player, 250_000)
                if method == "card"
                else _deposit(player, method, 250_000, **details)
            )
            deposit = await _create(merchant, body)
            if pay is not None:
                await _at_provider(sim, provider, deposit["id"])
                paid = await sim.post(f"/pay/{provider}/{deposit['id']}/{pay}")
                assert paid.status_code == 200, paid.text
            done = await _finish(merchant, temporal_env.client, deposit, skip_time=pay is not None)
            assert (done["status"], done["provider"]) == ("succeeded", provider), done
            refund = await operator.post(
                f"/v1/deposits/{deposit['id']}/refunds",
                json={"amount": 100_000, "reason": "player asked"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert refund.status_code == 202, refund.text
            await _result(temporal_env.client.get_workflow_handle(refund.json()["workflow_id"]))
    _, lines = await _report(settings, provider, today())
    assert [(x.kind, x.amount_minor) for x in lines if x.reference == deposit["id"]] == [
        ("payment", 250_000),
        ("refund", 100_000),
    ]
    fee = 3_750 if provider == "halyk" else 0  # the platform's 150 bps for Halyk
    assert [x.fee_minor for x in lines if x.reference == deposit["id"]] == [fee, 0]


@pytest.mark.parametrize("connector_type", ["ioka", "cloudpayments"])
def test_a_chargeback_notification_is_signed_as_the_providers_callbacks(
    connector_type: str,
) -> None:
    """Where the provider notifies chargebacks, the platform's connector authenticates the
    notification as any other callback of that provider (its format is an assumption)."""
    import time

    from providers.connectors.cloudpayments import CloudPaymentsClient
    from providers.connectors.ioka import IokaClient
    from simulator.reports.routes import CHARGEBACK_ENCODERS

    event = {
        "kind": "chargeback",
        "reference": "dep_0a1b2c3d4e5f60718293a4b5",
        "provider_id": "cb_0123",
        "payment_id": "pay_0123",
        "amount": 5_000_00,
        "currency": "KZT",
        "reason": "4837",
        "sent_at": "2026-11-27T10:00:00+00:00",
    }
    body, headers = CHARGEBACK_ENCODERS[connector_type]("whsec", event)
    client = IokaClient if connector_type == "ioka" else CloudPaymentsClient
    client.verify_callback("whsec", headers, body, now=time.time(), tolerance_seconds=300)
