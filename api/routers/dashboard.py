"""`GET /dashboard`: the operators' analytics page. Static HTML, CSS and JS shipped with the
package (no CDN); the page asks for an operator API key and reads the JSON API with it."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import Problem

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "recon.js": "text/javascript; charset=utf-8",
}
# The page loads only its own assets and talks only to this API.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@router.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(
        STATIC / "dashboard.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/dashboard/recon")
async def recon_dashboard() -> FileResponse:
    """Reconciliation per provider and day: matched and unmatched counts and amounts, open
    cases, clearing and difference balances (`GET /v1/finance/recon`)."""
    return FileResponse(
        STATIC / "recon.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/dashboard/assets/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise Problem(404, "not_found", f"No dashboard asset {name}")
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})
