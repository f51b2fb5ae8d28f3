"""Leaner `ledger_post`: fewer statements per posting, same contract and SQLSTATEs.

The entries are unpacked once into arrays; accounts are created only when the lock pass finds
fewer rows than the posting names; the counters move in one UPDATE computed from the posting
itself (not re-read from `ledger_entries`), and that UPDATE's RETURNING carries the balance-flag
check. A post of a pending transfer with no amount posts the full pending amount (no separate
lookup from Python).

Revision ID: 0030
Revises: 0002
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0030"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEAN_POST = r"""
CREATE OR REPLACE FUNCTION ledger_post(
    p_key text, p_kind text, p_payment_id text, p_hash text, p_phase text,
    p_pending_key text, p_amount bigint, p_accounts jsonb, p_entries jsonb
) RETURNS TABLE (tx_id bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_resolving boolean := p_phase IN ('post_pending', 'void_pending');
    v_codes text[];
    v_sides text[];
    v_amounts bigint[];
    v_wanted int;
    v_locked int;
    v_existing record;
    v_pending_id bigint := NULL;
    v_pending_amount bigint;
    v_amount bigint := p_amount;
    v_tx bigint;
    v_breach text;
BEGIN
    IF v_resolving THEN
        SELECT t.id INTO v_pending_id
        FROM ledger_transactions t WHERE t.key = p_pending_key AND t.phase = 'pending';
        IF v_pending_id IS NULL THEN
            RAISE EXCEPTION 'no pending transfer %', p_pending_key USING ERRCODE = 'LG404';
        END IF;
        SELECT array_agg(a.code ORDER BY e.id), array_agg(e.side ORDER BY e.id),
               array_agg(e.amount_minor ORDER BY e.id)
        INTO v_codes, v_sides, v_amounts
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.transaction_id = v_pending_id;
    ELSE
        SELECT array_agg(e->>'code' ORDER BY n), array_agg(e->>'side' ORDER BY n),
               array_agg((e->>'amount')::bigint ORDER BY n)
        INTO v_codes, v_sides, v_amounts
        FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS x(e, n);
    END IF;
    SELECT count(DISTINCT c) INTO v_wanted FROM unnest(v_codes) c;

    -- Lock the accounts in code order (no deadlocks); create the missing ones first if any.
    SELECT count(*) INTO v_locked FROM (
        SELECT 1 FROM ledger_accounts WHERE code = ANY (v_codes) ORDER BY code FOR UPDATE
    ) locked;
    IF v_locked < v_wanted AND p_accounts IS NOT NULL THEN
        INSERT INTO ledger_accounts (code, type, currency, owner_id,
                                     debits_must_not_exceed_credits,
                                     posted_debits, posted_credits, pending_debits, pending_credits)
        SELECT a->>'code', a->>'type', a->>'currency', a->>'owner_id',
               (a->>'flag')::boolean, 0, 0, 0, 0
        FROM jsonb_array_elements(p_accounts) a
        ORDER BY a->>'code'
        ON CONFLICT (code) DO NOTHING;
        PERFORM 1 FROM ledger_accounts WHERE code = ANY (v_codes) ORDER BY code FOR UPDATE;
    END IF;

    -- The key is checked under the locks, so a concurrent duplicate sees the first commit.
    SELECT t.id, t.content_hash INTO v_existing FROM ledger_transactions t WHERE t.key = p_key;
    IF FOUND THEN
        IF v_existing.content_hash <> p_hash THEN
            RAISE EXCEPTION 'key % was posted with other content', p_key USING ERRCODE = 'LG409';
        END IF;
        RETURN QUERY SELECT v_existing.id, false;
        RETURN;
    END IF;

    IF v_resolving THEN
        IF EXISTS (SELECT 1 FROM ledger_transactions WHERE pending_id = v_pending_id) THEN
            RAISE EXCEPTION 'pending transfer % is already resolved', p_pending_key
                USING ERRCODE = 'LG410';
        END IF;
        v_pending_amount := v_amounts[1];
        IF p_phase = 'post_pending' THEN
            v_amount := coalesce(p_amount, v_pending_amount);
            IF v_amount <= 0 OR v_amount > v_pending_amount THEN
                RAISE EXCEPTION 'cannot post % of pending %', v_amount, v_pending_amount
                    USING ERRCODE = 'LG422';
            END IF;
        END IF;
    END IF;

    INSERT INTO ledger_transactions (key, kind, payment_id, content_hash, phase, pending_id)
    VALUES (p_key, p_kind, p_payment_id, p_hash, p_phase, v_pending_id)
    RETURNING id INTO v_tx;

    IF p_phase <> 'void_pending' THEN
        INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency)
        SELECT v_tx, a.id, x.side,
               CASE WHEN p_phase = 'post_pending' THEN v_amount ELSE x.amount END, a.currency
        FROM unnest(v_codes, v_sides, v_amounts) WITH ORDINALITY AS x(code, side, amount, n)
        JOIN ledger_accounts a ON a.code = x.code
        ORDER BY x.n;
    END IF;

    -- Move the cached counters from the posting itself; RETURNING checks the balance flags.
    WITH moves AS (
        SELECT x.code,
            sum(CASE WHEN x.side = 'D' THEN x.amount ELSE 0 END) AS dr,
            sum(CASE WHEN x.side = 'C' THEN x.amount ELSE 0 END) AS cr
        FROM unnest(v_codes, v_sides, v_amounts) AS x(code, side, amount)
        GROUP BY x.code
    ), moved AS (
        UPDATE ledger_accounts a SET
            posted_debits = a.posted_debits + CASE
                WHEN p_phase = 'posted' THEN m.dr
                WHEN p_phase = 'post_pending' AND m.dr > 0 THEN v_amount ELSE 0 END,
            posted_credits = a.posted_credits + CASE
                WHEN p_phase = 'posted' THEN m.cr
                WHEN p_phase = 'post_pending' AND m.cr > 0 THEN v_amount ELSE 0 END,
            pending_debits = a.pending_debits
                + CASE WHEN p_phase = 'pending' THEN m.dr WHEN v_resolving THEN -m.dr ELSE 0 END,
            pending_credits = a.pending_credits
                + CASE WHEN p_phase = 'pending' THEN m.cr WHEN v_resolving THEN -m.cr ELSE 0 END
        FROM moves m
        WHERE a.code = m.code
        RETURNING a.code, a.debits_must_not_exceed_credits
            AND a.posted_debits + a.pending_debits > a.posted_credits AS breach
    )
    SELECT moved.code INTO v_breach FROM moved WHERE moved.breach LIMIT 1;
    IF v_breach IS NOT NULL THEN
        RAISE EXCEPTION 'insufficient funds on %', v_breach USING ERRCODE = 'LG402';
    END IF;

    RETURN QUERY SELECT v_tx, true;
END $$;
"""


def upgrade() -> None:
    op.execute(_LEAN_POST)


def downgrade() -> None:
    # 0002's body comes back by re-running its function definition.
    path = Path(__file__).with_name("0002_two_phase_ledger.py")
    spec = importlib.util.spec_from_file_location("ledger_0002", path)
    assert spec is not None
    assert spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous._POST_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
