# ruff: noqa: S608  (SQL built from this module's constants only)
"""Kazakhstan compliance: persons, exclusion refusals, the payout deadline, financial monitoring
reports, the ESU's record of what was reported, cool-offs.

- `persons`: one row per IIN. Every player account belongs to one (`players.person_id`, filled
  on insert by the trigger `players_person` from the IIN, so every writer of `players` gets it);
  existing players are attached to the person of their IIN. `players.merchant_id` (from the API
  key's `api_keys.merchant_id`, `default` unless set) and `players.linked_to`: a second account
  of a person at the same merchant exists only when the merchant linked it explicitly. The
  external id is unique per merchant (it was unique overall).
- `rg_cool_offs`: a break of 24 hours to 6 weeks the player takes (never shortened).
- `withdrawals.payout_deadline`: the end of the third calendar day after the request in
  Kazakhstan time (UTC+5), set on insert by the trigger `withdrawals_payout_deadline` and
  filled for existing rows; `deadline_warned_at` (a day before) and `deadline_escalated_at`.
- `compliance_refusals`: every refusal of a registration, deposit or withdrawal by a compliance
  rule (exclusion registers, age, ESU, credit money, cool-off), with its code.
- `fm_reports` and `fm_report_payments`: the financial-monitoring queue (a payout at or over
  the threshold, or a split series reaching it), each payout in at most one report per kind.
- `esu_operations`: each operation reported to the ESU, once, with its receipt.

Grants come from 0130's default privileges (the tables are created as the owner role).

Revision ID: 0150
Revises: 0010, 0140
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0150"
# The heads at the time with the tables this one touches: 0140 (players, withdrawals, api keys,
# late payments, the roles of 0130) and 0010 (the responsible-gaming tables and alerts).
down_revision: str | Sequence[str] | None = ("0010", "0140")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSON_ID = "'psn_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24)"


def _at(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def upgrade() -> None:
    _persons()
    _cool_offs()
    _payout_deadline()
    op.create_table(
        "compliance_refusals",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("register", sa.String(32), nullable=True),
        sa.Column("iin", sa.String(12), nullable=True),
        sa.Column("person_id", sa.String(40), sa.ForeignKey("persons.id"), nullable=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=True),
        sa.Column("payment_id", sa.String(40), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        _at("created_at", nullable=False, now=True),
        sa.CheckConstraint(
            "stage IN ('registration', 'deposit', 'withdrawal')", name="refusal_stage"
        ),
    )
    op.create_index("ix_compliance_refusals_created", "compliance_refusals", ["created_at"])
    op.create_index(
        "ix_compliance_refusals_person", "compliance_refusals", ["person_id", "created_at"]
    )
    op.create_table(
        "fm_reports",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("person_id", sa.String(40), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("iin", sa.String(12), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("threshold_minor", sa.BigInteger, nullable=False),
        sa.Column("payments", JSONB, nullable=False),  # [{payment_id, player_id, amount, paid_at}]
        _at("first_paid_at", nullable=False),
        _at("last_paid_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        _at("submitted_at"),
        sa.Column("submitted_by", sa.String(40), nullable=True),
        sa.Column("submitted_by_name", sa.String(100), nullable=True),
        sa.Column("submission_reference", sa.String(100), nullable=True),
        _at("created_at", nullable=False, now=True),
        sa.CheckConstraint("kind IN ('threshold', 'split')", name="fm_report_kind"),
        sa.CheckConstraint("status IN ('pending', 'submitted')", name="fm_report_status"),
    )
    op.create_index("ix_fm_reports_status_created", "fm_reports", ["status", "created_at"])
    op.create_table(
        "fm_report_payments",
        sa.Column("report_id", sa.String(40), sa.ForeignKey("fm_reports.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("payment_id", "kind", name="pk_fm_report_payments"),
    )
    op.create_table(
        "esu_operations",
        sa.Column("operation_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("person_id", sa.String(40), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        _at("occurred_at", nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=False),
        _at("reported_at", nullable=False, now=True),
    )
    op.create_index("ix_esu_operations_payment", "esu_operations", ["payment_id"])


def _persons() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("iin", sa.String(12), nullable=False, unique=True),
        sa.Column("birth_date", sa.Date, nullable=False),
        _at("created_at", nullable=False, now=True),
    )
    op.add_column(
        "api_keys",
        sa.Column("merchant_id", sa.String(64), nullable=False, server_default="default"),
    )
    op.add_column("players", sa.Column("person_id", sa.String(40), nullable=True))
    op.add_column(
        "players",
        sa.Column("merchant_id", sa.String(64), nullable=False, server_default="default"),
    )
    op.add_column("players", sa.Column("linked_to", sa.String(40), nullable=True))
    # Existing data: one person per IIN (the earliest birth date, should two accounts differ).
    op.execute(
        f"INSERT INTO persons (id, iin, birth_date) "
        f"SELECT {_PERSON_ID}, iin, min(birth_date) FROM players GROUP BY iin"
    )
    op.execute(
        "UPDATE players SET person_id = persons.id FROM persons WHERE persons.iin = players.iin"
    )
    op.alter_column("players", "person_id", nullable=False)
    op.create_foreign_key("fk_players_person", "players", "persons", ["person_id"], ["id"])
    op.create_foreign_key("fk_players_linked_to", "players", "players", ["linked_to"], ["id"])
    op.create_index("ix_players_person_merchant", "players", ["person_id", "merchant_id"])
    # The external id was unique overall; it is the merchant's, so unique per merchant.
    op.execute(
        """
        DO $$ DECLARE name text; BEGIN
            SELECT conname INTO name FROM pg_constraint
            WHERE conrelid = 'players'::regclass AND contype = 'u'
              AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                  WHERE attrelid = 'players'::regclass
                                    AND attname = 'external_id')]::smallint[];
            IF name IS NOT NULL THEN
                EXECUTE format('ALTER TABLE players DROP CONSTRAINT %I', name);
            END IF;
        END $$
        """
    )
    op.create_unique_constraint(
        "uq_players_merchant_external_id", "players", ["merchant_id", "external_id"]
    )
    op.execute(
        f"""
        CREATE FUNCTION players_person() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.person_id IS NULL THEN
                INSERT INTO persons (id, iin, birth_date)
                VALUES ({_PERSON_ID}, NEW.iin, NEW.birth_date)
                ON CONFLICT (iin) DO NOTHING;
                SELECT id INTO NEW.person_id FROM persons WHERE iin = NEW.iin;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER players_person BEFORE INSERT ON players "
        "FOR EACH ROW EXECUTE FUNCTION players_person()"
    )


def _cool_offs() -> None:
    op.create_table(
        "rg_cool_offs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        _at("until", nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        _at("created_at", nullable=False, now=True),
    )
    op.create_index("ix_rg_cool_offs_player", "rg_cool_offs", ["player_id", "until"])


def _payout_deadline() -> None:
    op.add_column("withdrawals", _at("payout_deadline"))
    op.add_column("withdrawals", _at("deadline_warned_at"))
    op.add_column("withdrawals", _at("deadline_escalated_at"))
    # End of the third calendar day after the request, Kazakhstan time (UTC+5 since March
    # 2024; a fixed offset, so the result does not depend on the server's time zone data).
    deadline = (
        "(((({at} AT TIME ZONE INTERVAL '+05:00')::date + 4)::timestamp) "
        "AT TIME ZONE INTERVAL '+05:00')"
    )
    op.execute(f"UPDATE withdrawals SET payout_deadline = {deadline.format(at='created_at')}")
    on_insert = deadline.format(at="NEW.created_at")
    op.execute(
        f"""
        CREATE FUNCTION withdrawals_payout_deadline() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.payout_deadline IS NULL THEN
                NEW.payout_deadline := {on_insert};
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER withdrawals_payout_deadline BEFORE INSERT ON withdrawals "
        "FOR EACH ROW EXECUTE FUNCTION withdrawals_payout_deadline()"
    )
    op.create_index(
        "ix_withdrawals_status_deadline", "withdrawals", ["status", "payout_deadline", "id"]
    )


def downgrade() -> None:
    op.drop_table("esu_operations")
    op.drop_table("fm_report_payments")
    op.drop_table("fm_reports")
    op.drop_table("compliance_refusals")
    op.drop_index("ix_withdrawals_status_deadline", table_name="withdrawals")
    op.execute("DROP TRIGGER withdrawals_payout_deadline ON withdrawals")
    op.execute("DROP FUNCTION withdrawals_payout_deadline()")
    for column in ("deadline_escalated_at", "deadline_warned_at", "payout_deadline"):
        op.drop_column("withdrawals", column)
    op.drop_table("rg_cool_offs")
    op.execute("DROP TRIGGER players_person ON players")
    op.execute("DROP FUNCTION players_person()")
    op.drop_constraint("uq_players_merchant_external_id", "players", type_="unique")
    op.create_unique_constraint("players_external_id_key", "players", ["external_id"])
    op.drop_index("ix_players_person_merchant", table_name="players")
    op.drop_constraint("fk_players_linked_to", "players", type_="foreignkey")
    op.drop_constraint("fk_players_person", "players", type_="foreignkey")
    for column in ("linked_to", "merchant_id", "person_id"):
        op.drop_column("players", column)
    op.drop_column("api_keys", "merchant_id")
    op.drop_table("persons")
