"""Lists of payments (deposits, withdrawals): newest first, in keyset pages of `limit` rows with a
cursor to the next page, each row summarized by the fields every payment shares."""

import base64
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Query

from api.errors import Problem

Limit = Annotated[int, Query(ge=1, le=200)]
"""The page size a list endpoint takes (`limit: Limit = 50`)."""

Before = tuple[datetime, str]
"""(created_at, id) of the last row of the previous page: the next page is older."""


class Listed(Protocol):
    """A row of a payment list (a deposit or a withdrawal)."""

    @property
    def id(self) -> str: ...

    @property
    def player_id(self) -> str: ...

    @property
    def amount_minor(self) -> int: ...

    @property
    def currency(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def status_reason(self) -> str | None: ...

    @property
    def created_at(self) -> datetime: ...


R = TypeVar("R", bound=Listed)


async def page(
    fetch: Callable[[int, Before | None], Awaitable[Sequence[R]]],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[R], str | None]:
    """One page of rows and the cursor of the next (None on the last page). `fetch(limit,
    before)` reads at most `limit` rows older than `before`, newest first, with the filters."""
    rows = await fetch(limit + 1, decode_cursor(cursor) if cursor else None)
    if len(rows) <= limit:
        return rows, None
    shown = rows[:limit]
    return shown, encode_cursor(shown[-1])


def summary(row: Listed) -> dict[str, Any]:
    """The fields every payment's summary shows (each kind adds its own)."""
    return {
        "id": row.id,
        "player_id": row.player_id,
        "amount": row.amount_minor,
        "currency": row.currency,
        "method": row.method,
        "status": row.status,
        "status_reason": row.status_reason,
        "created_at": row.created_at,
    }


def encode_cursor(row: Listed) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> Before:
    try:
        stamp, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc
