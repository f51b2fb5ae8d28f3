"""What the risk engine should know about a player beyond single payments (migration 0120):
a chargeback, for now. A flag is raised once per (player, kind, source) and stays active until
it is cleared (a chargeback reversed); `active_flags` is what the fraud rules read."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import bindparam


@dataclass(frozen=True)
class RiskFlag:
    id: int
    player_id: str
    kind: str
    source_ref: str
    reason: str
    details: dict[str, Any]
    created_at: datetime
    cleared_at: datetime | None
    cleared_reason: str | None


_COLUMNS = (
    "id, player_id, kind, source_ref, reason, details, created_at, cleared_at, cleared_reason"
)


async def raise_flag(
    session: AsyncSession,
    *,
    player_id: str,
    kind: str,
    source_ref: str,
    reason: str,
    details: dict[str, Any],
    now: datetime,
) -> bool:
    """Flag the player (once per source); True when the flag is new."""
    result = await session.execute(
        text(
            "INSERT INTO player_risk_flags (player_id, kind, source_ref, reason, details, "
            "created_at) VALUES (:player, :kind, :ref, :reason, :details, :now) "
            "ON CONFLICT ON CONSTRAINT uq_player_risk_flag DO NOTHING RETURNING id"
        ).bindparams(bindparam("details", type_=JSONB)),
        {
            "player": player_id,
            "kind": kind,
            "ref": source_ref,
            "reason": reason,
            "details": details,
            "now": now,
        },
    )
    return result.scalar_one_or_none() is not None


async def clear_flag(
    session: AsyncSession,
    *,
    player_id: str,
    kind: str,
    source_ref: str,
    reason: str,
    now: datetime,
) -> bool:
    result = await session.execute(
        text(
            "UPDATE player_risk_flags SET cleared_at = :now, cleared_reason = :reason "
            "WHERE player_id = :player AND kind = :kind AND source_ref = :ref "
            "AND cleared_at IS NULL"
        ),
        {"now": now, "reason": reason, "player": player_id, "kind": kind, "ref": source_ref},
    )
    return bool(getattr(result, "rowcount", 0))


async def active_flags(session: AsyncSession, *, player_id: str) -> list[RiskFlag]:
    """The player's flags still in force, oldest first: what the fraud rules look at."""
    rows = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM player_risk_flags "  # noqa: S608 - constant columns
            "WHERE player_id = :player AND cleared_at IS NULL ORDER BY id"
        ),
        {"player": player_id},
    )
    return [RiskFlag(**row._asdict()) for row in rows]


async def all_flags(session: AsyncSession, *, player_id: str) -> list[RiskFlag]:
    rows = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM player_risk_flags "  # noqa: S608 - constant columns
            "WHERE player_id = :player ORDER BY id"
        ),
        {"player": player_id},
    )
    return [RiskFlag(**row._asdict()) for row in rows]
