"""`python -m api.keys create --role operator --name "Aliya (ops)"` prints a new API key once.

Also `list`, `revoke KEY_ID` and `rotate KEY_ID`: a new key for the same holder, printed once,
while the old one keeps working for a grace period (`--grace-hours`, 24 by default) and then
expires. `--expires-in-days` gives a key a lifetime (a rotated key keeps its predecessor's).
The database comes from PAY_DATABASE_URL (settings).
"""

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from config import get_settings
from db import api_keys
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
            if args.command == "create":
                lifetime = _lifetime(args.expires_in_days)
                issued = await api_keys.issue_key(
                    session,
                    name=args.name,
                    role=Role(args.role),
                    expires_at=now + lifetime if lifetime is not None else None,
                    merchant_id=args.merchant,
                )
                print(f"{issued.holder.key_id} ({issued.holder.role}, {issued.holder.name})")
                print(issued.secret)
                print("Store this key now: only its hash is kept.", file=sys.stderr)
            elif args.command == "list":
                for key in await api_keys.list_keys(session):
                    holder = key.holder
                    print(
                        f"{holder.key_id}\t{holder.role}\t{key.created_at:%Y-%m-%d}\t"
                        f"{_state(key, now)}\t{holder.name}"
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
    finally:
        await engine.dispose()
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
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
