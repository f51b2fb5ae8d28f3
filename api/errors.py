"""Every error leaves as application/problem+json (RFC 9457) with a stable `code`.

Validation errors never echo the submitted input back: it may hold a card number.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("api")


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").capitalize()
        self.errors = errors
        self.extensions = extensions  # RFC 9457 extension members (e.g. allowed_destinations)


def problem_response(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://docs.kzpay.example/errors/{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors:
        body["errors"] = problem.errors
    for name, value in (problem.extensions or {}).items():
        body.setdefault(name, value)
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON)


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Location, message and type of each error, without the offending input."""
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        where = ", ".join(".".join(e["loc"]) + ": " + e["msg"] for e in errors[:5])
        return problem_response(
            Problem(422, "validation_error", f"The request is invalid: {where}", errors=errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem_response(Problem(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(500, "internal_error", "An unexpected error occurred; it has been logged.")
        )
