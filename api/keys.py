"""`python -m api.keys create --role operator --name "Aliya (ops)"` prints a new API key once.

Also `list` and `revoke KEY_ID`. The database comes from PAY_DATABASE_URL (settings).
"""

import argparse
import asyncio
import sys

from config import get_settings
from db import api_keys
from db.engine import make_engine, make_sessionmaker
from domain.roles import Role


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.database_url:
        print("PAY_DATABASE_URL is not set: point it at the payments database", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            if args.command == "create":
                issued = await api_keys.issue_key(session, name=args.name, role=Role(args.role))
                print(f"{issued.holder.key_id} ({issued.holder.role}, {issued.holder.name})")
                print(issued.secret)
                print("Store this key now: only its hash is kept.", file=sys.stderr)
            elif args.command == "list":
                for holder, created, revoked in await api_keys.list_keys(session):
                    state = f"revoked {revoked:%Y-%m-%d}" if revoked else "active"
                    print(
                        f"{holder.key_id}\t{holder.role}\t{created:%Y-%m-%d}\t{state}\t{holder.name}"
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
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
