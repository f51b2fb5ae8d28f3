"""What a withdrawal must respect before it is held (issue 18), checked in the request:

- a credited deposit of the player's person still under review (or rejected) blocks withdrawals
  (`withdrawals_blocked_by_review`), the rule set's `review_mode = "credit"`;
- the closed loop (domain/fraud/closed_loop.py): deposits go back first to the instruments they
  came from, up to the net deposited through each (`closed_loop_required`, with the allowed
  destinations and what each may still take); beyond that, only to methods in the player's name
  (`destination_not_in_player_name`).
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Problem
from db import closed_loop as loop_store
from db import risk as risk_store
from db.models import Player
from domain.fraud.closed_loop import judge
from domain.fraud.geo import names_match


async def check_closed_loop(
    session: AsyncSession,
    *,
    player: Player,
    method: str,
    destination: dict[str, Any],
    destination_key: str,
    amount_minor: int,
    currency: str,
) -> None:
    blocking = await risk_store.blocking_reviews(session, player_id=player.id)
    if blocking:
        ids = [r.deposit_id for r in blocking]
        raise Problem(
            422,
            "withdrawals_blocked_by_review",
            f"deposit {', '.join(ids)} of this player is under review by the risk team (or was "
            "rejected): withdrawals wait for its approval",
            extensions={"deposits_in_review": ids},
        )
    instruments, paid = await loop_store.instruments(
        session, player_id=player.id, currency=currency, player_phone=player.phone
    )
    holder = destination.get("holder_name")
    name_matches = names_match(player.full_name, holder) if isinstance(holder, str) else None
    keys: tuple[str, ...] = (destination_key,)
    if method == "bank_transfer" and name_matches is not False:
        keys += (loop_store.ANY_IBAN,)
    verdict = judge(
        method=method,
        destination_key=keys,
        amount_minor=amount_minor,
        instruments=instruments,
        paid_before=destination_key in paid,
        name_matches=name_matches,
    )
    if verdict.allowed:
        return
    assert verdict.code is not None
    raise Problem(
        422,
        verdict.code,
        verdict.detail,
        extensions={
            "allowed_destinations": [
                {
                    "method": i.method,
                    "destination": i.label,
                    "up_to": i.remaining_minor,
                    "currency": currency,
                }
                for i in verdict.allowed_destinations
            ]
        },
    )
