"""The rule-set overlay the test session runs with, and helpers to change it in a test.

The suite's fixtures give every player the same card (4242...), device ("dev-1") and IP (each
player is a person of their own: `make_iin` gives a new IIN each time), so rules that link
payments across players (card, device and IP velocity, card testing by device,
multi-accounting) would fire on unrelated tests. The overlay lifts those thresholds;
tests of those rules tighten them again by rewriting the overlay, which the worker re-reads.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UNLIMITED = 1_000_000_000_000
_CROSS_PLAYER = [
    ("deposit", f"velocity_{dim}_{measure}_{window}", "max")
    for dim in ("card", "device", "ip")
    for measure in ("count", "sum")
    for window in ("10m", "1h", "24h")
] + [
    ("deposit", "card_testing", "max_declines"),
    ("deposit", "multi_account_device", "max_other_identities"),
    ("deposit", "multi_account_card", "max_other_identities"),
    ("withdrawal", "multi_account_destination", "max_other_identities"),
    ("withdrawal", "velocity_destination_count_24h", "max"),
]


def overlay_text(extra: str = "", version: str = "test") -> str:
    from domain.fraud.config import DEFAULT_RULES_PATH

    configured = DEFAULT_RULES_PATH.read_text()
    parts = [f'version = "{version}"']
    for kind, code, param in _CROSS_PLAYER:
        header = f"[{kind}.rules.{code}]"
        if header in configured and header not in extra:
            parts.append(f"[{kind}.rules.{code}]\n{param} = {_UNLIMITED}")
    return "\n\n".join(parts) + "\n\n" + extra


def write_overlay(path: Path, extra: str = "", version: str = "test") -> Path:
    path.write_text(overlay_text(extra, version))
    return path


@contextmanager
def overlay(path: Path, extra: str, version: str) -> Iterator[None]:
    """Run with `extra` TOML merged into the session's overlay, then put it back."""
    before = path.read_text()
    write_overlay(path, extra, version)
    try:
        yield
    finally:
        path.write_text(before)
