"""Monitoring alerts for operators: list them, mark them handled, run the checks now."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import OperatorDep, SessionDep, SettingsDep
from api.errors import Problem
from db import monitoring
from db.fraud_models import Alert
from domain.fraud import RuleSource

router = APIRouter(prefix="/v1/ops/alerts", tags=["ops"])

_PROBLEMS = {404: {"description": "alert_not_found"}}


class AlertOut(BaseModel):
    id: int
    object: Literal["alert"] = "alert"
    kind: str
    severity: str
    subject: str
    message: str
    details: dict[str, Any]
    status: str
    created_at: datetime
    handled_at: datetime | None
    handled_by: str | None
    note: str | None


class AlertList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AlertOut]
    next_cursor: str | None


class HandleIn(BaseModel):
    model_config = {"extra": "forbid"}
    note: str | None = Field(default=None, max_length=500)


class CheckOut(BaseModel):
    raised: list[str]


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert, from_attributes=True)


@router.get("", responses=_PROBLEMS)  # type: ignore[arg-type]
async def list_alerts(
    session: SessionDep,
    _: OperatorDep,
    status: Literal["open", "handled"] | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> AlertList:
    rows = await monitoring.list_alerts(
        session,
        status=status,
        kind=kind,
        limit=limit + 1,
        before_id=int(cursor) if cursor else None,
    )
    page = rows[:limit]
    return AlertList(
        data=[_out(a) for a in page], next_cursor=str(page[-1].id) if len(rows) > limit else None
    )


@router.post("/check")
async def run_checks(session: SessionDep, settings: SettingsDep, _: OperatorDep) -> CheckOut:
    """Run the monitoring checks now (they also run from `python -m db.monitoring`)."""
    rules = RuleSource(settings.fraud_rules_path, settings.fraud_rules_overlay).current()
    async with session.begin():
        raised = await monitoring.run_checks(
            session, now=datetime.now(UTC), thresholds=settings.monitor_thresholds(), rules=rules
        )
    return CheckOut(raised=raised)


@router.post("/{alert_id}/handle", responses=_PROBLEMS)  # type: ignore[arg-type]
async def handle_alert(
    alert_id: int, session: SessionDep, principal: OperatorDep, body: HandleIn | None = None
) -> AlertOut:
    async with session.begin():
        alert = await monitoring.handle_alert(
            session,
            alert_id=alert_id,
            handled_by=principal.name,
            note=body.note if body else None,
            now=datetime.now(UTC),
        )
        if alert is None:
            raise Problem(404, "alert_not_found", f"No alert {alert_id}")
        return _out(alert)
