"""The unified accounting system (ESU) over HTTP (`domain.compliance.esu.UnifiedAccounting`).

Its real API is not public: the calls below are the platform's assumption (see
`domain/compliance/esu.py`), spoken by the simulator's `simulator/esu.py`. Base URL and
credential from `PAY_ESU_URL` / `PAY_ESU_SECRET`; our operator id from `PAY_ESU_OPERATOR_ID`.

- `POST {base}/v1/authorizations` -> allowed or refused, with the person's monthly limit;
- `PUT {base}/v1/operations/{operation_id}` -> the receipt (201 new, 200 already recorded).

A transport error, a timeout, a 429 or a 5xx is `EsuUnavailable` (try again); a 409 (another
operation under this id) or another 4xx is `EsuRejected` (trying again will not help).
"""

from typing import Any

import httpx

from config import Settings
from domain.compliance.esu import (
    EsuAuthorization,
    EsuOperation,
    EsuReceipt,
    EsuRejected,
    EsuUnavailable,
)


class HttpUnifiedAccounting:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        secret: str,
        operator_id: str,
        timeout_seconds: float,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._operator = operator_id
        self._timeout = timeout_seconds

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                f"{self._base}{path}",
                json=body,
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise EsuUnavailable(f"no answer: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise EsuUnavailable(f"answered {response.status_code}")
        if response.status_code >= 400:
            code, detail = _error(response)
            raise EsuRejected(code, detail)
        return response

    async def authorize(
        self, *, iin: str, amount_minor: int, currency: str, payment_id: str
    ) -> EsuAuthorization:
        response = await self._call(
            "POST",
            "/v1/authorizations",
            {
                "operator_id": self._operator,
                "iin": iin,
                "amount_minor": amount_minor,
                "currency": currency,
                "payment_id": payment_id,
            },
        )
        try:
            body = response.json()
            decision = body["decision"]
            if decision not in ("allowed", "refused"):
                raise ValueError(f"decision {decision!r}")
            limit = body.get("monthly_limit_minor")
            return EsuAuthorization(
                allowed=decision == "allowed",
                reason=body.get("reason"),
                monthly_limit_minor=None if limit is None else int(limit),
                month_used_minor=int(body.get("month_used_minor") or 0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EsuUnavailable(f"unreadable answer: {exc}") from exc

    async def report(self, operation: EsuOperation) -> EsuReceipt:
        response = await self._call(
            "PUT",
            f"/v1/operations/{operation.operation_id}",
            {
                "operator_id": self._operator,
                "kind": operation.kind,
                "payment_id": operation.payment_id,
                "iin": operation.iin,
                "amount_minor": operation.amount_minor,
                "currency": operation.currency,
                "method": operation.method,
                "provider": operation.provider,
                "occurred_at": operation.occurred_at.isoformat(),
            },
        )
        try:
            body = response.json()
            return EsuReceipt(
                operation_id=operation.operation_id,
                receipt_id=str(body["receipt_id"]),
                duplicate=bool(body.get("duplicate", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # It was recorded (2xx) but the receipt is unreadable: ask again for it.
            raise EsuUnavailable(f"unreadable receipt: {exc}") from exc


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("code") or response.status_code), str(body.get("detail") or "")
    except ValueError:
        return str(response.status_code), response.text[:200]


def unified_accounting(settings: Settings, http: httpx.AsyncClient) -> HttpUnifiedAccounting:
    return HttpUnifiedAccounting(
        http=http,
        base_url=settings.esu_base_url,
        secret=settings.esu_secret.get_secret_value(),
        operator_id=settings.esu_operator_id,
        timeout_seconds=settings.provider_http_timeout_seconds,
    )
