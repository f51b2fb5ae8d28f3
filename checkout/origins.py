"""Web origins and addresses the checkout accepts from configuration and from casinos.

No imports from the rest of the project: `config.settings` validates with these.
"""

from urllib.parse import urlsplit

_LOCAL = ("localhost", "127.0.0.1", "[::1]", "::1")


def origin_problem(origin: str) -> str | None:
    """Why `origin` is not a web origin such as `https://casino.example` (None: it is)."""
    parts = urlsplit(origin)
    if not origin.isprintable() or any(c in origin for c in " ;,'\"*"):
        return f"{origin!r} is not an origin such as https://casino.example"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{origin!r} is not an origin such as https://casino.example"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return f"{origin!r} must be an origin only (scheme, host, port), with no path"
    if parts.scheme == "http" and parts.hostname not in _LOCAL:
        return f"{origin!r}: only https:// (http:// only for localhost)"
    return None


def origin_of(url: str) -> str | None:
    """`https://host:port` of an absolute http(s) address, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def web_address_problem(value: str) -> str | None:
    """Why `value` is not an absolute https:// address a browser may be sent to (http:// only to
    localhost): never `javascript:` or `data:`."""
    parts = urlsplit(value)
    local = parts.hostname in _LOCAL
    if not value.isprintable() or " " in value or not parts.hostname or parts.username:
        return "must be an absolute https:// address"
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        return "must be an absolute https:// address"
    return None
