"""3-D Secure by form (CloudPayments): the deposit's next_action asks the browser to POST PaReq,
MD and our TermUrl to the issuer's ACS; the ACS posts PaRes and MD back to TermUrl
(`POST /v1/deposits/{id}/3ds`), which hands them to the acquirer (`post3ds`). Nothing is charged
before that; a forged MD changes nothing; a failed challenge fails the deposit."""

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tests import test_connectors_end_to_end as end_to_end
from tests import test_gateway as gateway
from tests.conftest import card_deposit, new_player
from tests.test_gateway import (
    THREE_DS_CARD,
    _at_provider,
    _create,
    _credits,
    _finish,
    _until_status,
)

sim = gateway.sim
stack_for = end_to_end.stack_for  # a worker and the API with only this provider on for cards

CLOUDPAYMENTS = pytest.mark.parametrize("stack_for", ["cloudpayments"], indirect=True)


async def _challenge(api: httpx.AsyncClient, sim: httpx.AsyncClient) -> tuple[dict[str, Any], Any]:
    """A 3-D Secure deposit waiting for the payer, and what the ACS offers for it."""
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player, number=THREE_DS_CARD))
    await _at_provider(sim, "cloudpayments", deposit["id"])
    action = (await _until_status(api, deposit["id"], "requires_action"))["next_action"]
    assert action["method"] == "POST", action
    form = action["form"]
    assert set(form) == {"PaReq", "MD", "TermUrl"}
    assert form["TermUrl"].endswith(f"/v1/deposits/{deposit['id']}/3ds")
    acs = await sim.post(
        urlsplit(action["url"]).path, data=form, headers={"accept": "application/json"}
    )
    assert acs.status_code == 200, acs.text
    return deposit, acs.json()


def _term_path(offer: Any) -> str:
    return urlsplit(str(offer["term_url"])).path


@CLOUDPAYMENTS
async def test_the_acs_result_posted_to_term_url_completes_the_payment(
    stack_for: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    api = stack_for
    deposit, offer = await _challenge(api, sim)
    held = (await sim.get("/admin/charges", params={"reference": deposit["id"]})).json()
    assert [h["money_moved"] for h in held] == [False], held  # nothing charged before PaRes

    forged = await api.post(_term_path(offer), data={**offer["pass"], "MD": "999999"})
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_3ds_result")
    empty = await api.post(_term_path(offer), data={"MD": offer["pass"]["MD"]})
    assert (empty.status_code, empty.json()["code"]) == (400, "invalid_3ds_result")
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "requires_action"

    back = await api.post(_term_path(offer), data=offer["pass"])
    assert back.status_code == 200, back.text
    assert "text/html" in back.headers["content-type"]
    done = await _finish(api, temporal_env.client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "cloudpayments"), done
    assert await _credits(sessions, deposit["id"]) == 1
    again = await api.post(_term_path(offer), data=offer["pass"])  # the browser's refresh
    assert again.status_code == 200
    assert await _credits(sessions, deposit["id"]) == 1


@CLOUDPAYMENTS
async def test_a_failed_challenge_posted_to_term_url_fails_the_deposit(
    stack_for: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    api = stack_for
    deposit, offer = await _challenge(api, sim)
    back = await api.post(_term_path(offer), data=offer["fail"])
    assert back.status_code == 200, back.text
    done = await _finish(api, temporal_env.client, deposit)
    assert done["status"] == "failed", done
    assert done["status_reason"] == "provider_declined:authentication_failed"
    assert await _credits(sessions, deposit["id"]) == 0


async def test_term_url_of_an_unknown_deposit_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/deposits/dep_nope/3ds", data={"PaRes": "x", "MD": "1"})
    assert (response.status_code, response.json()["code"]) == (404, "payment_not_found")
