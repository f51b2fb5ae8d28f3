"""Refund activities: ask the provider that took the payment to refund it, then post or
release the hold, and record the refund's status. Keys come from the refund id."""

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import ledger as ledger_store
from db import refunds as refund_store
from domain.ledger import refund_resolution
from providers.errors import ProviderError, ProviderNotProcessed, ProviderRejected
from providers.http import ProviderHttp


class RefundAtProviderInput(BaseModel):
    refund_id: str
    deposit_id: str
    provider: str
    amount_minor: int
    currency: str


class RefundAtProviderResult(BaseModel):
    refunded: bool = True


class SettleRefundInput(BaseModel):
    refund_id: str
    deposit_id: str
    action: Literal["post", "void"]


class SettleRefundResult(BaseModel):
    transaction_id: int


class RecordRefundInput(BaseModel):
    refund_id: str
    status: Literal["succeeded", "failed"]
    reason: str | None = None
    occurred_at: datetime


class RecordRefundResult(BaseModel):
    recorded: bool = True


def refunds_supported(client: ProviderHttp | type[ProviderHttp]) -> bool:
    return callable(getattr(client, "refund", None))


class RefundActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        providers: Mapping[str, ProviderHttp],
    ) -> None:
        self._sessions = sessions
        self._providers = providers

    @activity.defn
    async def refund_at_provider(self, inp: RefundAtProviderInput) -> RefundAtProviderResult:
        """One refund request. Refunds are not idempotent at most providers, so only a request
        that never reached the provider is tried again; an unknown outcome is never re-sent."""
        client = self._providers.get(inp.provider)
        if client is None or not refunds_supported(client):
            raise ApplicationError(
                f"{inp.provider} takes no refunds here", non_retryable=True, type="NoRefunds"
            )
        refund = client.refund  # type: ignore[attr-defined]
        kwargs: dict[str, object] = {
            "reference": inp.deposit_id,
            "amount": inp.amount_minor,
            "currency": inp.currency,
        }
        if "refund_reference" in inspect.signature(refund).parameters:
            kwargs["refund_reference"] = inp.refund_id  # idempotent where the provider allows
        try:
            await refund(**kwargs)
        except ProviderRejected as exc:
            raise ApplicationError(
                f"refund refused: {exc.code}", exc.code, non_retryable=True, type="RefundRefused"
            ) from exc
        except ProviderNotProcessed as exc:  # never left, or throttled: safe to ask again
            raise ApplicationError(str(exc), exc.code, type="RefundNotSent") from exc
        except ProviderError as exc:
            raise ApplicationError(
                str(exc), exc.code, non_retryable=True, type="RefundOutcomeUnknown"
            ) from exc
        return RefundAtProviderResult()

    @activity.defn
    async def settle_refund_hold(self, inp: SettleRefundInput) -> SettleRefundResult:
        posted = await ledger_store.resolve(
            self._sessions,
            refund_resolution(
                refund_id=inp.refund_id, deposit_id=inp.deposit_id, action=inp.action
            ),
        )
        return SettleRefundResult(transaction_id=posted.id)

    @activity.defn
    async def record_refund_status(self, inp: RecordRefundInput) -> RecordRefundResult:
        async with self._sessions.begin() as session:
            await refund_store.record_status(
                session,
                refund_id=inp.refund_id,
                status=inp.status,
                reason=inp.reason,
                at=inp.occurred_at,
            )
        return RecordRefundResult()
