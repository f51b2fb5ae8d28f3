"""Players: identified by IIN, adults only (21+), Kazakh mobile phone.

A person is one IIN (`persons`): each player account belongs to one. A merchant may hold one
account per person; a second one with the same IIN is refused (409 `iin_already_registered`,
naming the existing account) unless the request links it to that account (`link_to`). The
exclusion registers are checked at registration (`api/compliance.py`)."""

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api import compliance
from api.deps import SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.idempotency import fingerprint
from api.schemas import BalanceOut, PlayerCreate, PlayerOut
from db import idempotency, persons
from db import players as player_store
from db.models import Player
from domain.ids import new_id
from domain.iin import InvalidIIN, age_on, parse_iin
from domain.phone import is_kz_mobile

MINIMUM_AGE = 21
router = APIRouter(prefix="/v1/players", tags=["players"])

_PROBLEMS = {
    400: {"description": "Missing or malformed header"},
    404: {"description": "No such player"},
    409: {
        "description": "player_exists (external_id), iin_already_registered (the person has "
        "an account here: link it with link_to), idempotency_key_reused"
    },
    422: {
        "description": "invalid_iin, underage, birth_date_mismatch, invalid_phone, "
        "invalid_link, self_excluded, debtor_excluded, civil_servant_excluded, "
        "military_excluded, ..."
    },
}


def check_new_player(body: PlayerCreate, *, today: date) -> date:
    """The birth date the IIN carries, once every rule for a new player holds."""
    try:
        iin = parse_iin(body.iin)
    except InvalidIIN as exc:
        raise Problem(422, "invalid_iin", str(exc)) from exc
    if body.birth_date is not None and body.birth_date != iin.birth_date:
        raise Problem(
            422, "birth_date_mismatch", "birth_date does not match the birth date in the IIN"
        )
    if age_on(iin.birth_date, today) < MINIMUM_AGE:
        raise Problem(422, "underage", f"Players must be at least {MINIMUM_AGE} years old")
    if not is_kz_mobile(body.phone):
        raise Problem(
            422, "invalid_phone", "phone must be a Kazakh mobile number: +77 and 9 digits"
        )
    return iin.birth_date


async def player_out(session: AsyncSession, player: Player, *, currency: str) -> PlayerOut:
    balance = await player_store.get_balance(session, player_id=player.id, currency=currency)
    return PlayerOut(
        id=player.id,
        external_id=player.external_id,
        full_name=player.full_name,
        iin_last4=player.iin[-4:],
        birth_date=player.birth_date,
        phone=player.phone,
        email=player.email,
        balance=BalanceOut(
            currency=balance.currency,
            available=balance.available_minor,
            held=balance.held_minor,
        ),
        created_at=player.created_at,
        person_id=player.person_id,
        linked_to=player.linked_to,
    )


@router.post("", status_code=201, responses=_PROBLEMS)  # type: ignore[arg-type]
async def create_player(
    body: PlayerCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> PlayerOut:
    birth_date = check_new_player(body, today=datetime.now(UTC).date())
    async with session.begin():
        if idempotency_key is not None:
            stored = await idempotency.claim(
                session,
                scope="players",
                key=idempotency_key,
                request_hash=fingerprint(
                    body, secret=settings.idempotency_secret.get_secret_value()
                ),
            )
            if stored is not None:
                player = await player_store.get_player(session, player_id=stored.resource_id)
                assert player is not None
                return await player_out(session, player, currency="KZT")
        await compliance.check_registration(state, iin=body.iin)
        # The key's merchant, as authentication read it (else from the key's row).
        merchant_id = getattr(request.state, "merchant_id", None) or (
            await player_store.merchant_of_key(session, key_id=request.state.principal.key_id)
        )
        person_id = await persons.lock_person(session, iin=body.iin, birth_date=birth_date)
        accounts = await persons.accounts_at(session, person_id=person_id, merchant_id=merchant_id)
        taken = next((a for a in accounts if a.external_id == body.external_id), None)
        if taken is not None:
            raise Problem(
                409, "player_exists", f"A player with external_id {body.external_id!r} exists"
            )
        if body.link_to is not None and body.link_to not in {a.player_id for a in accounts}:
            raise Problem(
                422,
                "invalid_link",
                f"link_to {body.link_to!r} is not an account of this person (IIN) here",
            )
        if accounts and body.link_to is None:
            raise Problem(
                409,
                "iin_already_registered",
                f"This IIN already has an account here: player {accounts[0].player_id}. "
                "A person may hold a second account only when it is linked to the first "
                "(link_to); limits and exclusions apply to the person across both",
            )
        try:
            player = await player_store.create_player(
                session,
                player_id=new_id("pl"),
                external_id=body.external_id,
                iin=body.iin,
                full_name=body.full_name,
                birth_date=birth_date,
                phone=body.phone,
                email=body.email,
                merchant_id=merchant_id,
                person_id=person_id,
                linked_to=body.link_to,
            )
        except player_store.PlayerExists as exc:
            raise Problem(
                409, "player_exists", f"A player with external_id {body.external_id!r} exists"
            ) from exc
        if idempotency_key is not None:
            await idempotency.complete(
                session,
                scope="players",
                key=idempotency_key,
                resource_id=player.id,
                status_code=201,
            )
        await session.refresh(player)
        return await player_out(session, player, currency="KZT")


@router.get("/{player_id}", responses=_PROBLEMS)  # type: ignore[arg-type]
async def get_player(player_id: str, session: SessionDep) -> PlayerOut:
    player = await player_store.get_player(session, player_id=player_id)
    if player is None:
        raise Problem(404, "player_not_found", f"No player {player_id!r}")
    return await player_out(session, player, currency="KZT")
