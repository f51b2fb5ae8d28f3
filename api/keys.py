"""`python -m api.keys create --role operator --name "Aliya (ops)" --operator OP_ID` prints a new
API key once.

Also `list`, `revoke KEY_ID` and `rotate KEY_ID`: a new key for the same holder, printed once,
while the old one keeps working for a grace period (`--grace-hours`, 24 by default) and then
expires. `--expires-in-days` gives a key a lifetime (a rotated key keeps its predecessor's).

Operators are people (db/operators.py): `create-operator --name "Aliya Nurlanovna" --email
aliya@example.kz` prints the operator's id; `assign KEY_ID --operator OP_ID` gives an operator or
admin key to its person (once: a key never changes hands); `operators` lists them with their
keys; `deactivate-operator OP_ID` stops a person from deciding anything and revokes their keys.
Approvals, rejections and case resolutions need a key that belongs to an active operator,
admin keys too, and four eyes are two different operators.
The database comes from PAY_DATABASE_URL (settings).
"""

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from config import get_settings
from db import api_keys, operators
from db.engine import make_engine, make_sessionmaker
from domain.roles import Role


def _state(key: api_keys.KeyInfo, now: datetime) -> str:
    if key.revoked_at is not None:
        return f"revoked {key.revoked_at:%Y-%m-%d}"
    if key.expires_at is not None and key.expires_at <= now:
        return f"expired {key.expires_at:%Y-%m-%d %H:%M}"
    if key.expires_at is not None:
        return f"active until {key.expires_at:%Y-%m-%d %H:%M}"
    return "active"


def _lifetime(days: float | None) -> timedelta | None:
    return timedelta(days=days) if days is not None else None


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.database_url:
        print("PAY_DATABASE_URL is not set: point it at the payments database", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        async with sessions.begin() as session:
            if args.command in _OPERATOR_COMMANDS:
                return await _operator_command(session, args, now)
            if args.command == "create":
                lifetime = _lifetime(args.expires_in_days)
                issued = await api_keys.issue_key(
                    session,
                    name=args.name,
                    role=Role(args.role),
                    expires_at=now + lifetime if lifetime is not None else None,
                    merchant_id=args.merchant,
                    operator_id=args.operator,
                )
                owner = f", operator {args.operator}" if args.operator else ""
                print(f"{issued.holder.key_id} ({issued.holder.role}, {issued.holder.name}{owner})")
                print(issued.secret)
                print("Store this key now: only its hash is kept.", file=sys.stderr)
            elif args.command == "list":
                for key in await api_keys.list_keys(session):
                    holder = key.holder
                    print(
                        f"{holder.key_id}\t{holder.role}\t{key.created_at:%Y-%m-%d}\t"
                        f"{_state(key, now)}\t{key.operator_id or '-'}\t{holder.name}"
                    )
            elif args.command == "rotate":
                rotated = await api_keys.rotate_key(
                    session,
                    key_id=args.key_id,
                    grace=timedelta(hours=args.grace_hours),
                    expires_in=_lifetime(args.expires_in_days),
                    now=now,
                )
                if rotated is None:
                    print(f"no active key {args.key_id}", file=sys.stderr)
                    return 1
                new = rotated.new
                print(f"{new.holder.key_id} ({new.holder.role}, {new.holder.name})")
                print(new.secret)
                print(
                    f"Store this key now: only its hash is kept. {rotated.old_key_id} stops "
                    f"working at {rotated.old_expires_at:%Y-%m-%d %H:%M} UTC.",
                    file=sys.stderr,
                )
            elif not await api_keys.revoke_key(session, key_id=args.key_id):
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            else:
                print(f"revoked {args.key_id}")
    except operators.OperatorRefused as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0


_OPERATOR_COMMANDS = frozenset({"create-operator", "assign", "operators", "deactivate-operator"})


async def _operator_command(session: AsyncSession, args: argparse.Namespace, now: datetime) -> int:
    """The people behind operator and admin keys (raises OperatorRefused to print it)."""
    if args.command == "create-operator":
        operator = await operators.create_operator(session, name=args.name, email=args.email)
        print(f"{operator.id} ({operator.name}, {operator.email})")
    elif args.command == "assign":
        await operators.assign_key(session, key_id=args.key_id, operator_id=args.operator)
        print(f"{args.key_id} belongs to {args.operator}")
    elif args.command == "operators":
        for operator, keys in await operators.list_operators(session):
            state = "active" if operator.active else "deactivated"
            print(
                f"{operator.id}\t{state}\t{operator.email}\t{operator.name}\t"
                f"{','.join(keys) or '-'}"
            )
    else:
        revoked = await operators.deactivate_operator(
            session, operator_id=args.operator_id, now=now
        )
        print(f"deactivated {args.operator_id}; revoked {revoked} key(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a key and print it once")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", required=True, help="who or what holds the key")
    create.add_argument("--expires-in-days", type=float, help="the key's lifetime (default none)")
    create.add_argument(
        "--merchant",
        default="default",
        help="the merchant (casino) a merchant key acts for: one account per person each",
    )
    create.add_argument(
        "--operator",
        help="the operator (person, from create-operator) an operator or admin key belongs to; "
        "without one the key cannot approve or reject anything",
    )
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    rotate = commands.add_parser(
        "rotate", help="a new key for the same holder; the old one expires after a grace period"
    )
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="how long the old key keeps working (default 24; 0: it stops now)",
    )
    rotate.add_argument(
        "--expires-in-days", type=float, help="the new key's lifetime (default: the old key's)"
    )
    person = commands.add_parser("create-operator", help="record an operator (a person)")
    person.add_argument("--name", required=True, help="the person's full name")
    person.add_argument("--email", required=True, help="their e-mail address (one per person)")
    assign = commands.add_parser("assign", help="give an operator or admin key to its person")
    assign.add_argument("key_id")
    assign.add_argument("--operator", required=True, help="the operator id")
    commands.add_parser("operators", help="list operators and their keys")
    deactivate = commands.add_parser(
        "deactivate-operator", help="the person decides nothing more; their keys are revoked"
    )
    deactivate.add_argument("operator_id")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
