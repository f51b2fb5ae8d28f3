"""One API key per role for a development stack, kept in the data directory between runs.

Only `make run` on the embedded default uses this; production keys come from
`python -m api.keys create`.
"""

import asyncio
import json
from pathlib import Path

from db import api_keys
from db.engine import make_engine, make_sessionmaker
from domain.roles import Role


def ensure_dev_keys(database_url: str, path: Path) -> dict[str, str]:
    """The keys in `path` if the database still accepts them all, else freshly issued ones."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    keys = asyncio.run(_valid_or_fresh(database_url, known))
    if keys != known:
        path.write_text(json.dumps(keys, indent=2) + "\n")
        path.chmod(0o600)
    return keys


async def _valid_or_fresh(database_url: str, known: dict[str, str]) -> dict[str, str]:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            if set(known) == {role.value for role in Role}:
                checks = [await api_keys.authenticate(session, key=key) for key in known.values()]
                if all(checks):
                    return known
            return {
                role.value: (
                    await api_keys.issue_key(session, name=f"dev {role}", role=role)
                ).secret
                for role in Role
            }
    finally:
        await engine.dispose()
