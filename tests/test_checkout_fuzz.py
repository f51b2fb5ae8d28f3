"""Hostile input at the hosted checkout: schemathesis over its API operations (against a real API
process), and random forms posted to the player's pages; never a 5xx, never a payment made from
a form that is not the page's own."""

import asyncio
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.roles import Role
from tests.checkout_helpers import csrf, open_session, path_of, player_client, session_row
from tests.conftest import new_player
from tests.test_hostile_input import BIN, _junit
from tests.test_hostile_input import api_process as api_process  # the fixture

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_schemathesis_finds_no_server_error_in_the_checkout_api(
    api_process: str, api_keys: dict[Role, str], tmp_path: Path
) -> None:
    for role in (Role.MERCHANT, Role.OPERATOR):
        report = tmp_path / role.value
        report.mkdir()
        command = [
            str(BIN / "schemathesis"), "run", f"{api_process}/openapi.json",
            "--header", f"Authorization: Bearer {api_keys[role]}",
            "--checks", "not_a_server_error",
            "--max-examples", "60",
            "--seed", "20261128",
            "--request-timeout", "30",
            "--workers", "1",
            "--phases", "examples,fuzzing",
            "--report", "junit", "--report-dir", str(report),
            "--include-path-regex", "^/v1/(checkout/|analytics/checkout-funnel)",
        ]  # fmt: skip
        result = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, check=False, cwd=report
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        suite = await asyncio.to_thread(_junit, report)
        assert len(suite.findall(".//testcase")) >= 3, output[-3000:]
        assert not suite.findall(".//failure")
        assert not suite.findall(".//error")


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "csrf",
            "method",
            "amount",
            "amount_other",
            "number",
            "expiry",
            "cvc",
            "holder",
            "wallet_account",
            "phone",
            "destination",
            "iban",
            "lang",
        ]
    ),
    st.one_of(_TEXT, st.integers(-(10**25), 10**25).map(str)),
    max_size=8,
)


async def test_random_forms_at_the_pages_never_fail_and_never_pay(
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with player_client(app) as browser:
        await _random_forms(api, browser, sessions)


async def _random_forms(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    deposit = await open_session(api, player)
    cash_out = await open_session(api, player, kind="withdrawal", amount_presets=None)
    targets = [f"{path_of(deposit)}/{action}" for action in ("choose", "pay", "back")] + [
        f"{path_of(cash_out)}/withdraw",
        f"{path_of(deposit)}/withdraw",
    ]

    # Hypothesis drives a sync function and the client is async: draw the forms, then post them.
    examples: list[tuple[str, dict[str, str], bytes]] = []

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(target=st.sampled_from(targets), fields=_FIELDS, raw=st.binary(max_size=200))
    def collect(target: str, fields: dict[str, str], raw: bytes) -> None:
        examples.append((target, fields, raw))

    collect()
    for target, fields, raw in examples:
        for content in (None, raw):
            response = await anonymous_api.post(
                target,
                data=fields if content is None else None,
                content=content,
                headers=FORM,
            )
            assert response.status_code < 500, (target, fields, response.text)
    for created in (deposit, cash_out):
        assert (await session_row(sessions, created["id"]))["payment_ids"] == []

    # With the page's own token, the wildest values are refused, not crashed on.
    page = (await anonymous_api.get(path_of(deposit))).text
    for amount in ("9" * 30, "-1", "1e9", "NaN", "0", "other"):
        response = await anonymous_api.post(
            f"{path_of(deposit)}/choose",
            data={
                "csrf": csrf(page, "choose"),
                "method": "card",
                "amount": amount,
                "amount_other": amount,
            },
            headers=FORM,
        )
        assert response.status_code == 303
