"""A deposit the risk engine sends to review is held: paid at the provider, not credited, until an
operator approves it (issue 18, gated by the patch `fraud-review-hold`).

The deposit waits in `in_review`. Operators act through the workflow updates `approve` and
`reject`, whose validators refuse a decision the review cannot take before anything is written
(the API answers 409 `invalid_state`): approving or rejecting a deposit that is not waiting for a
review, or the other decision after one was taken; the same decision again is harmless. First
of all they refuse an update without the API's signed approval token for this deposit, decision
and operator (`workflows/approval_gate.py`): one sent straight to Temporal moves no money. Approved,
the deposit is credited as any other; rejected, it is `declined` (`risk_review_rejected`) and the
money goes back through the provider that took it. With the rule set's `review_mode = "credit"`
nothing is held here: the deposit is credited and the person's withdrawals wait instead. A
provider that reports a cardholder other than the player before the deposit is credited
(`ProviderEvent.card_holder_matches`, Freedom Pay) holds it the same way.

Deterministic workflow code only; passed through the sandbox (worker.PASSTHROUGH_MODULES).
"""

from typing import TYPE_CHECKING

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from activities.fraud import DepositReviewInput, ReviewActivities
from activities.gateway_models import ProviderEvent
from activities.models import RiskCheckResult
from domain.fraud.review import InvalidReview, ReviewAction, ReviewStatus, check_review
from domain.risk import RiskVerdict
from domain.statuses import DepositStatus
from workflows.approval_gate import require_token
from workflows.compliance_steps import refund_at_provider
from workflows.steps import StuckGuard, reason

if TYPE_CHECKING:
    from workflows.deposit_models import DepositWorkflowInput, DepositWorkflowResult

REVIEW_HOLD_PATCH = "fraud-review-hold"


class ReviewInput(BaseModel):
    """An operator's decision, as the API sends it: the person (`db/operators.py`) the API key
    belongs to, and the API's signed approval token for this deposit and decision
    (`domain/approvals.py`; None only in histories recorded before tokens existed)."""

    actor_id: str
    actor_name: str
    reason: str | None = None
    approval_token: str | None = None


class ReviewResult(BaseModel):
    review: str  # pending | approved | rejected
    changed: bool


class DepositReviewHold:
    """The review steps and updates of DepositWorkflow (a base class of it)."""

    _risk: RiskCheckResult | None = None
    _review_status: ReviewStatus | None = None  # None: not waiting for a review
    _review_by: ReviewInput | None = None
    _review_recorded: bool = False
    _holder_mismatch: bool = False
    if TYPE_CHECKING:
        _guard: StuckGuard

        async def _transition(
            self,
            inp: DepositWorkflowInput,
            status: DepositStatus,
            why: str | None,
            *,
            provider: str | None = None,
        ) -> None: ...

        async def _finish(
            self,
            inp: DepositWorkflowInput,
            status: DepositStatus,
            why: str | None,
            *,
            provider: str | None = None,
        ) -> DepositWorkflowResult: ...

    def _note_provider_event(self, event: ProviderEvent) -> None:
        """A provider reported a cardholder who is not the player: hold the deposit too."""
        if event.card_holder_matches is False:
            self._holder_mismatch = True

    def _holds_for_review(self) -> bool:
        """The engine asked for a review and the rule set holds such deposits, or the provider
        reported someone else's card (patched runs)."""
        risk = self._risk
        review = (
            risk is not None and risk.decision is RiskVerdict.REVIEW and risk.review_mode == "hold"
        )
        if not review and not self._holder_mismatch:
            return False
        return workflow.patched(REVIEW_HOLD_PATCH)

    async def _await_review(self, inp: "DepositWorkflowInput", provider: str) -> bool:
        """Paid, not credited: wait in `in_review` for an operator. True when approved."""
        self._review_status = "pending"
        codes = ",".join(self._risk.reasons) if self._risk else ""
        if self._holder_mismatch and "card_holder_mismatch" not in codes:
            codes = ",".join(c for c in (codes, "card_holder_mismatch") if c)
        await self._transition(
            inp, DepositStatus.IN_REVIEW, reason("risk_review", codes), provider=provider
        )
        await workflow.wait_condition(lambda: self._review_status != "pending")
        by, decided = self._review_by, self._decided()
        assert by is not None
        action: ReviewAction = "approve" if decided == "approved" else "reject"
        await self._guard.run(
            ReviewActivities.record_deposit_review,
            DepositReviewInput(
                deposit_id=inp.deposit_id,
                action=action,
                actor_id=by.actor_id,
                actor_name=reason(by.actor_name, limit=100),
                reason=reason(by.reason, limit=500) if by.reason else None,
                occurred_at=workflow.now(),
            ),
        )
        self._review_recorded = True
        return decided == "approved"

    def _decided(self) -> ReviewStatus | None:
        return self._review_status

    async def _review_rejected(
        self, inp: "DepositWorkflowInput", provider: str, amount_minor: int, currency: str
    ) -> "DepositWorkflowResult":
        """Declined by an operator: recorded first, then the money goes back at the provider."""
        actor = self._review_by.actor_id if self._review_by else "operator"
        result = await self._finish(
            inp,
            DepositStatus.DECLINED,
            reason("risk_review_rejected", actor),
            provider=provider,
        )
        result.provider = provider
        await refund_at_provider(
            self._guard,
            refund_id=f"review-{inp.deposit_id}",
            deposit_id=inp.deposit_id,
            provider=provider,
            amount_minor=amount_minor,
            currency=currency,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    # -- the operators' updates --------------------------------------------------------------

    @workflow.update
    async def approve(self, review: ReviewInput) -> ReviewResult:
        return await self._decide("approve", review)

    @approve.validator
    def _validate_approve(self, review: ReviewInput) -> None:
        require_token(review, "approve")  # first: an update forged through Temporal stops here
        self._check("approve")

    @workflow.update
    async def reject(self, review: ReviewInput) -> ReviewResult:
        return await self._decide("reject", review)

    @reject.validator
    def _validate_reject(self, review: ReviewInput) -> None:
        require_token(review, "reject")
        self._check("reject")

    def _check(self, action: ReviewAction) -> bool:
        try:
            return check_review(self._review_status, action)
        except InvalidReview as exc:
            raise ApplicationError(str(exc), type="InvalidTransition") from exc

    async def _decide(self, action: ReviewAction, review: ReviewInput) -> ReviewResult:
        changed = self._check(action)
        if changed:
            self._review_status = "approved" if action == "approve" else "rejected"
            self._review_by = review
        # Answered once the decision is in the database (the deposit moves on after it).
        await workflow.wait_condition(lambda: self._review_recorded)
        return ReviewResult(review=self._review_status or "pending", changed=changed)
