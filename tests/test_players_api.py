"""Players through the HTTP API: IIN, 21+, phone, duplicates, problem+json errors."""

from datetime import UTC, datetime

import httpx

from tests.conftest import make_iin, player_body

PROBLEM = "application/problem+json"


async def test_create_and_get_player(api: httpx.AsyncClient) -> None:
    body = player_body(birth_date="1990-01-01", email="a@example.kz")
    created = await api.post("/v1/players", json=body)
    assert created.status_code == 201, created.text
    player = created.json()
    assert player["id"].startswith("pl_")
    assert player["birth_date"] == "1990-01-01"
    assert player["iin_last4"] == body["iin"][-4:]
    assert player["balance"] == {"currency": "KZT", "available": 0, "held": 0}
    fetched = await api.get(f"/v1/players/{player['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["external_id"] == body["external_id"]


async def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]


async def test_invalid_iin_is_refused(api: httpx.AsyncClient) -> None:
    iin = make_iin()
    broken = iin[:11] + str((int(iin[11]) + 1) % 10)
    await _problem(await api.post("/v1/players", json=player_body(iin=broken)), 422, "invalid_iin")


async def test_underage_player_is_refused(api: httpx.AsyncClient) -> None:
    today = datetime.now(UTC).date()
    born = f"{(today.year - 20) % 100:02d}0101"
    iin = make_iin(born, 5 if today.year - 20 >= 2000 else 3)
    await _problem(await api.post("/v1/players", json=player_body(iin=iin)), 422, "underage")


async def test_birth_date_must_match_iin(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/players", json=player_body(birth_date="1991-01-01"))
    await _problem(response, 422, "birth_date_mismatch")


async def test_russian_number_is_not_a_kazakh_mobile(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/players", json=player_body(phone="+79161234567"))
    await _problem(response, 422, "invalid_phone")


async def test_duplicate_external_id_conflicts(api: httpx.AsyncClient) -> None:
    body = player_body()
    assert (await api.post("/v1/players", json=body)).status_code == 201
    await _problem(await api.post("/v1/players", json=body), 409, "player_exists")


async def test_player_idempotency_key_replays(api: httpx.AsyncClient) -> None:
    body = player_body()
    headers = {"Idempotency-Key": "player-" + body["external_id"]}
    first = await api.post("/v1/players", json=body, headers=headers)
    second = await api.post("/v1/players", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = await api.post("/v1/players", json=player_body(), headers=headers)
    await _problem(other, 409, "idempotency_key_reused")


async def test_unknown_player_is_404_problem(api: httpx.AsyncClient) -> None:
    await _problem(await api.get("/v1/players/pl_nope"), 404, "player_not_found")


async def test_malformed_body_is_422_without_echoing_input(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/players", json={"iin": 12, "secret": "4242424242424242"})
    await _problem(response, 422, "validation_error")
    assert "4242424242424242" not in response.text
