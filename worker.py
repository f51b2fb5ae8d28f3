"""The Temporal worker: builds the clients activities need and serves the payments task queue."""

import asyncio
import compileall
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from activities.analytics import AnalyticsActivities
from activities.compliance import ComplianceActivities
from activities.deposits import DepositActivities, RoutingConfig
from activities.finance import FinanceActivities
from activities.fraud import ReviewActivities
from activities.late_payments import LatePaymentActivities
from activities.monitoring import MonitoringActivities
from activities.recon import ReconActivities, provider_report_source, report_providers
from activities.recon_cases import CaseActivities
from activities.refunds import RefundActivities
from activities.stuck import StuckActivities
from activities.withdrawals import WithdrawalActivities
from codec.converter import data_converter
from config import Settings, get_settings
from config.logging import LogContextInterceptor, configure_logging
from config.temporal_tls import temporal_tls
from db.engine import make_engine, make_sessionmaker
from domain.approvals import configure_worker_secret
from domain.compliance.monitoring import Thresholds
from domain.fraud import RuleSource
from domain.fraud.geo import use_ip_database
from providers.esu import unified_accounting
from providers.payout import payout_providers
from providers.registry import card_providers, payment_providers, provider_http_client
from workflows.analytics import RollupFoldWorkflow, ensure_fold_schedule
from workflows.compliance import ComplianceReportWorkflow, PayoutDeadlineWorkflow
from workflows.deposit import DepositWorkflow
from workflows.finance import DailySnapshotWorkflow, ensure_snapshot_schedule
from workflows.late_payment import LatePaymentWorkflow, LateReviewWorkflow
from workflows.monitoring import MonitoringWorkflow, start_monitoring
from workflows.recon_case import CaseMoneyBackWorkflow
from workflows.reconciliation import (
    ReconciliationWorkflow,
    ScheduledReconciliationWorkflow,
    ensure_recon_schedules,
)
from workflows.refund import RefundWorkflow
from workflows.withdrawal import WithdrawalWorkflow

WORKFLOWS = [
    DepositWorkflow,
    WithdrawalWorkflow,
    MonitoringWorkflow,
    LatePaymentWorkflow,
    LateReviewWorkflow,
    RefundWorkflow,
    ReconciliationWorkflow,
    ScheduledReconciliationWorkflow,
    CaseMoneyBackWorkflow,
    DailySnapshotWorkflow,
    RollupFoldWorkflow,
    ComplianceReportWorkflow,
    PayoutDeadlineWorkflow,
]

# Modules the sandbox shares with the worker instead of importing them afresh for every workflow
# run: the models and pure domain code workflows use (side-effect free, no mutable state read by
# workflows). Everything else a workflow imports is still re-imported and checked.
PASSTHROUGH_MODULES = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "activities",
    "domain",
    "workflows.deposit_models",
    "workflows.withdrawal_models",
    "workflows.search_attributes",
    "workflows.steps",
    "workflows.compliance_steps",
    "workflows.deposit_review",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """Every workflow runs in the sandbox; the bench's bare baseline uses this same runner."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def precompile_workflows() -> None:
    """Write the bytecode of the workflow modules if it is missing or stale.

    The sandbox imports a workflow's module afresh for every run (that is its isolation); with
    PYTHONDONTWRITEBYTECODE set, as here and in the Dockerfile, nothing cached the bytecode of
    a source checkout, so every run compiled `workflows/deposit.py` again (~8% of the worker's
    CPU). The sandbox loads the .pyc through the same import machinery, so it stays as strict.
    A read-only install (the image) keeps the .pyc pip wrote; a failure here changes nothing.
    """
    if workflows.__file__ is not None:
        compileall.compile_dir(Path(workflows.__file__).parent, quiet=2)


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=temporal_tls(settings),
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
) -> Worker:
    fraud_rules = RuleSource(settings.fraud_rules_path, settings.fraud_rules_overlay)
    cards = card_providers(settings, http)
    payments = payment_providers(settings, http)
    deposits = DepositActivities(
        sessions=sessions,
        card_providers=cards,
        payment_providers=payments,
        routing=RoutingConfig(
            rules=settings.providers,
            exploration=settings.routing_exploration_rate,
            stats_window_seconds=settings.routing_stats_window_seconds,
            circuit=settings.circuit_policy(),
            api_url=settings.api_url,
        ),
        ledger_policy=settings.ledger_policy(),
        fraud_rules=fraud_rules,
    )
    withdrawals = WithdrawalActivities(
        sessions=sessions,
        payout_providers=payout_providers(settings, http),
        fraud_rules=fraud_rules,
    )
    monitoring = MonitoringActivities(
        sessions=sessions, fraud_rules=fraud_rules, thresholds=settings.monitor_thresholds()
    )
    stuck = StuckActivities(sessions=sessions)
    refunds = RefundActivities(sessions=sessions, providers={**cards, **payments})
    late = LatePaymentActivities(sessions=sessions, policy=settings.late_payment_policy)
    compliance = ComplianceActivities(
        sessions=sessions,
        esu=unified_accounting(settings, http),
        thresholds=Thresholds.in_kzt(
            settings.compliance_report_threshold_kzt, settings.compliance_split_window_days
        ),
        temporal=client,
        task_queue=settings.temporal_task_queue,
    )
    recon = ReconActivities(
        sessions=sessions,
        source=provider_report_source(settings, http),
        window_days=settings.recon_cross_day_window_days,
        shards=settings.ledger_house_shards,
        settlement_grace_days=settings.recon_settlement_grace_days,
    )
    cases = CaseActivities(sessions=sessions)
    finance = FinanceActivities(sessions=sessions)
    analytics = AnalyticsActivities(sessions=sessions)
    reviews = ReviewActivities(sessions=sessions)
    use_ip_database(settings.geoip_database)  # the fraud rules' IP countries
    # What the decision updates' validators verify the API's approval tokens with (never a
    # workflow input, so never in a history): domain/approvals.py, workflows/approval_gate.py.
    configure_worker_secret(
        settings.temporal_task_queue, settings.approval_token_secret.get_secret_value()
    )
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        interceptors=[LogContextInterceptor()],  # activities log with their payment's ids
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        max_cached_workflows=settings.worker_max_cached_workflows,
        activities=[
            deposits.assess_deposit_risk,
            deposits.route_deposit,
            deposits.prepare_deposit,
            deposits.charge_card,
            deposits.create_payment,
            deposits.inquire_payment,
            deposits.cancel_payment,
            deposits.record_deposit_route,
            deposits.credit_deposit,
            deposits.record_deposit_status,
            reviews.record_deposit_review,
            withdrawals.assess_withdrawal_risk,
            withdrawals.pay_out,
            withdrawals.inquire_payout,
            withdrawals.get_payout_status,
            withdrawals.settle_hold,
            withdrawals.record_withdrawal_status,
            withdrawals.record_review,
            withdrawals.escalate_review,
            monitoring.run_monitoring_checks,
            stuck.flag_stuck,
            stuck.clear_stuck,
            late.open_late_payment,
            late.hold_late_payment,
            late.resolve_late_payment,
            refunds.refund_at_provider,
            refunds.settle_refund_hold,
            refunds.record_refund_status,
            compliance.start_compliance_workflow,
            compliance.report_to_esu,
            compliance.esu_report_refused,
            compliance.screen_payout,
            compliance.payout_deadline_info,
            compliance.check_payout_deadline,
            compliance.refuse_credit_funds,
            recon.load_recon_report,
            recon.match_recon_report,
            recon.settle_recon_run,
            recon.charge_reported_chargebacks,
            cases.settle_return_hold,
            cases.finish_case,
            finance.take_balance_snapshot,
            analytics.fold_rollups,
        ],
    )


@contextlib.asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    if not settings.database_url:
        raise SystemExit("PAY_DATABASE_URL is not set: start the stack with `make run`")
    # No pre-ping: every activity is retried, so a connection PostgreSQL closed costs one retry
    # (and SQLAlchemy then replaces the pool's connections), not a round trip per transaction.
    engine = make_engine(settings.database_url, pre_ping=False)
    async with provider_http_client(settings) as http:
        worker = build_worker(client, settings, sessions=make_sessionmaker(engine), http=http)
        try:
            async with worker:
                yield worker
        finally:
            await engine.dispose()


async def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    precompile_workflows()
    client = await connect_temporal(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(client, settings):
        logging.getLogger("worker").info("worker polling %s", settings.temporal_task_queue)
        if settings.monitoring_interval_seconds > 0:  # alerts: providers, stuck, payouts, players
            await start_monitoring(
                client,
                task_queue=settings.temporal_task_queue,
                interval_seconds=settings.monitoring_interval_seconds,
            )
        if settings.recon_schedule_active:  # daily reconciliation of the previous day
            await ensure_recon_schedules(
                client,
                task_queue=settings.temporal_task_queue,
                providers=list(settings.recon_schedule_providers or report_providers(settings)),
                hour=settings.recon_schedule_hour,
                minute=settings.recon_schedule_minute,
            )
            # each account's balance at the end of the previous day, every night
            await ensure_snapshot_schedule(client, task_queue=settings.temporal_task_queue)
        if settings.analytics_fold_schedule_active:
            # analytics rollups folded on the primary every minute (readers may be on a replica)
            await ensure_fold_schedule(client, task_queue=settings.temporal_task_queue)
        await stop.wait()


def run_on_event_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """uvloop (installed with uvicorn[standard], as the API uses it) is a cheaper event loop for
    a process that spends its time in short database and HTTP round trips. The bench's bare
    worker runs on the same loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - plain asyncio works the same, a little slower
        asyncio.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    run_on_event_loop(main)
