"""Every recorded history of the released workflows replays on the code as it is now.

The histories come from tests/test_recorded_paths.py (`python -m tests.record_histories`). A
change to a workflow that would break a payment in flight fails here; the fix is a deliberate,
gated change (README, "Changing a workflow"), whose new histories join these.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.histories_helpers import HISTORIES
from worker import WORKFLOWS, workflow_runner

RECORDED = sorted(HISTORIES.glob("*.json"))

# Every path of the release has a history (issue: card succeeded, declined, 3-D Secure; each
# asynchronous method paid and expired; failover; ambiguous timeout; late success by polling;
# withdrawal approved, rejected, cancelled, paid, payout failed, escalated; monitoring).
EXPECTED = {
    "deposit_card_succeeded",
    "deposit_card_declined",
    "deposit_card_3ds_succeeded",
    "deposit_card_failover",
    "deposit_card_timeout_settled",
    "deposit_qr_paid_callback_lost",
    *(
        f"deposit_{method}_{outcome}"
        for method in ("qr", "bank_transfer", "ewallet", "mobile_banking", "aggregator")
        for outcome in ("paid", "expired")
    ),
    "withdrawal_approve",
    "withdrawal_reject",
    "withdrawal_cancel",
    "withdrawal_auto_paid",
    "withdrawal_payout_failed",
    "withdrawal_escalated",
    "monitoring",
    # The money-safety paths: processed then 5xx or reset, cancel 404 with a request in flight,
    # a late payment credited, or refunded at the provider that took it or that refund refused
    # (gated by the patch `late-refund-at-provider`), payouts processed then 504 or processing
    # for a while.
    "deposit_card_processed_then_5xx",
    "deposit_card_processed_then_reset",
    "deposit_card_cancel_404_in_flight",
    "late_payment_credited",
    "late_payment_refunded",
    "late_payment_refund_refused",
    "deposit_card_worker_killed",
    "refund_succeeded",
    "withdrawal_payout_processed_then_504",
    "withdrawal_payout_processing_polled",
    # Reconciliation (issue 16): a provider's clean day matched and settled.
    "reconciliation_clean_day",
    # Anti-fraud (issue 18, patch `fraud-review-hold`): a deposit held for review, approved
    # (credited) and rejected (declined, refunded at the provider).
    "deposit_card_review_approved",
    "deposit_card_review_rejected",
    # A payment reported after its deposit expired, whose review holds it (patch
    # `late-review-hold`): held in a LateReviewWorkflow until an operator approved it.
    "late_payment_review_approved",
    "late_review_approved",
    # Reconciliation (patch `recon-charge-reported-chargebacks`): a report's chargebacks charged.
    "reconciliation_chargebacks_charged",
    # Analytics (issue 19): the rollups folded on the primary by the schedule's workflow.
    "analytics_rollup_fold",
    # Compliance (issue 17, patches compliance-esu-report, compliance-payout-deadline,
    # compliance-credit-funds): reported to the ESU (retried through its outage), a payout
    # screened into a split report, the payout deadline escalated or closed, a Kaspi payment
    # funded by credit refunded.
    "deposit_card_succeeded_esu_reported",
    "compliance_esu_retried",
    "withdrawal_paid_compliance",
    "compliance_payout_split",
    "payout_deadline_escalated",
    "payout_deadline_closed",
    "deposit_qr_credit_funds_refunded",
}


def test_every_path_has_a_recorded_history() -> None:
    missing = EXPECTED - {path.stem for path in RECORDED}
    assert not missing, f"record them: python -m tests.record_histories (missing {missing})"


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))  # noqa: ASYNC240
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
