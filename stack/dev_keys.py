"""One API key per role for a development stack, kept in the data directory between runs.

Only `make run` on the embedded default uses this; production keys come from
`python -m api.keys create`. The operator and the admin key belong to two development people
(`db/operators.py`: decisions are made by people, and four eyes are two of them).
"""

import asyncio
import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from db import api_keys, operators
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
                    for holder in checks:
                        assert holder is not None
                        await _belongs_to_a_person(session, holder)
                    return known
            fresh: dict[str, str] = {}
            for role in Role:
                issued = await api_keys.issue_key(session, name=f"dev {role}", role=role)
                await _belongs_to_a_person(session, issued.holder)
                fresh[role.value] = issued.secret
            return fresh
    finally:
        await engine.dispose()


async def _belongs_to_a_person(session: AsyncSession, holder: api_keys.KeyHolder) -> None:
    """An operator or admin key without its person (keys from before migration 0200): given to
    the development person of its role."""
    if holder.role is Role.MERCHANT:
        return
    if await operators.operator_id_of_key(session, key_id=holder.key_id) is not None:
        return
    email = f"dev-{holder.role}@localhost.invalid"
    person = next(
        (o.id for o, _ in await operators.list_operators(session) if o.email == email), None
    )
    if person is None:
        person = (
            await operators.create_operator(session, name=f"dev {holder.role}", email=email)
        ).id
    await operators.assign_key(session, key_id=holder.key_id, operator_id=person)
