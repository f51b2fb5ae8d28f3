"""The rule set as configuration: `config/fraud_rules.toml`, optionally with an overlay file.

A rule runs for a payment kind only when the file configures it under `[deposit.rules.<code>]` or
`[withdrawal.rules.<code>]`, with its `action` (`decline`, `review` or `flag`), `score` and
parameters; `shadow = true` evaluates and stores it without letting it act (a candidate rule
watched on live traffic before it is trusted). The file's `version` label and the content hash of
the rule set (`RuleSet.content_hash`: any change gives another, whoever forgot to bump the label)
are stored with every decision. `[deposit] review_mode` says what a deposit in review does:
`hold` (not credited until an operator approves it) or `credit` (credited, the person's
withdrawals blocked until it is reviewed). `RuleSource` re-reads the files when they change, so
editing thresholds changes decisions without code or a restart.
"""

import hashlib
import json
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Action = Literal["decline", "review", "flag"]
ReviewMode = Literal["hold", "credit"]
ParamValue = int | str | list[str]
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "config" / "fraud_rules.toml"


class RuleConfigError(ValueError):
    """The rule file is malformed; the message names the key."""


@dataclass(frozen=True)
class RuleConfig:
    action: Action
    score: int
    params: dict[str, ParamValue] = field(default_factory=dict)
    shadow: bool = False  # evaluated and stored, never acts

    def int(self, name: str) -> int:
        value = self.params.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RuleConfigError(f"parameter {name!r} must be an integer")
        return value

    def strings(self, name: str) -> frozenset[str]:
        value = self.params.get(name)
        if not isinstance(value, list):
            raise RuleConfigError(f"parameter {name!r} must be a list of strings")
        return frozenset(value)


@dataclass(frozen=True)
class KindRules:
    review_score: int
    decline_score: int
    rules: dict[str, RuleConfig]
    review_mode: ReviewMode = "hold"


@dataclass(frozen=True)
class RuleSet:
    version: str
    deposit: KindRules
    withdrawal: KindRules
    facts: dict[str, int]  # look-backs and thresholds the fact queries need
    content_hash: str = ""  # SHA-256 of the rule set as parsed (canonical JSON)

    def fact(self, name: str, default: int) -> int:
        return self.facts.get(name, default)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_rule_set(document: dict[str, Any]) -> RuleSet:
    from domain.fraud.rules import RULES  # the registry validates codes and parameters

    version = document.get("version")
    if not isinstance(version, str) or not version:
        raise RuleConfigError("the rule file needs a non-empty string `version`")

    def kind_rules(kind: str) -> KindRules:
        section = document.get(kind, {})
        if not isinstance(section, dict):
            raise RuleConfigError(f"[{kind}] must be a table")
        rules: dict[str, RuleConfig] = {}
        for code, raw in section.get("rules", {}).items():
            if code not in RULES:
                raise RuleConfigError(f"[{kind}.rules.{code}]: no such rule")
            if not isinstance(raw, dict):
                raise RuleConfigError(f"[{kind}.rules.{code}] must be a table")
            if not raw.get("enabled", True):
                continue
            shadow = raw.get("shadow", False)
            if not isinstance(shadow, bool):
                raise RuleConfigError(f"[{kind}.rules.{code}].shadow must be true or false")
            action = raw.get("action")
            if action not in ("decline", "review", "flag"):
                raise RuleConfigError(f"[{kind}.rules.{code}].action must be decline|review|flag")
            score = raw.get("score", 0)
            if not isinstance(score, int) or score < 0:
                raise RuleConfigError(f"[{kind}.rules.{code}].score must be a non-negative integer")
            params = {
                k: v for k, v in raw.items() if k not in ("action", "score", "enabled", "shadow")
            }
            config = RuleConfig(action=action, score=score, params=params, shadow=shadow)
            rule = RULES[code]
            for name in rule.params:
                if name not in params:
                    raise RuleConfigError(f"[{kind}.rules.{code}] needs parameter {name!r}")
                try:
                    (config.strings if name in rule.list_params else config.int)(name)
                except RuleConfigError as exc:
                    raise RuleConfigError(f"[{kind}.rules.{code}]: {exc}") from exc
            rules[code] = config
        review = section.get("review_score", 50)
        decline = section.get("decline_score", 100)
        if not isinstance(review, int) or not isinstance(decline, int) or review > decline:
            raise RuleConfigError(f"[{kind}] review_score must be an integer <= decline_score")
        mode = section.get("review_mode", "hold")
        if mode not in ("hold", "credit"):
            raise RuleConfigError(f"[{kind}].review_mode must be hold|credit")
        return KindRules(review_score=review, decline_score=decline, rules=rules, review_mode=mode)

    facts = document.get("facts", {})
    if not isinstance(facts, dict) or not all(isinstance(v, int) for v in facts.values()):
        raise RuleConfigError("[facts] holds integer parameters only")
    return RuleSet(
        version=version,
        deposit=kind_rules("deposit"),
        withdrawal=kind_rules("withdrawal"),
        facts=dict(facts),
        content_hash=content_hash(document),
    )


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the rule document as canonical JSON: the same rules give the same hash,
    whatever the file's layout, comments or version label."""
    rules = {k: v for k, v in document.items() if k != "version"}
    canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_rule_set(path: Path, overlay: Path | None = None) -> RuleSet:
    """The rule set in `path`, with `overlay` merged over it (its `version` is appended)."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    if overlay is not None:
        extra = tomllib.loads(overlay.read_text(encoding="utf-8"))
        if "version" in extra:
            extra["version"] = f"{document.get('version')}+{extra['version']}"
        document = deep_merge(document, extra)
    return parse_rule_set(document)


class RuleSource:
    """The current rule set, re-read when a file's modification time or size changes.

    A file that fails to parse keeps the last good rule set in force (and the error is kept in
    `last_error`), so a typo cannot switch the rules off.
    """

    def __init__(self, path: Path | None = None, overlay: Path | None = None) -> None:
        self.path = path or DEFAULT_RULES_PATH
        self.overlay = overlay
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._rules = load_rule_set(self.path, self.overlay)
        self._stamp = self._current_stamp()

    def _current_stamp(self) -> tuple[tuple[int, int], ...]:
        files = [self.path] + ([self.overlay] if self.overlay else [])
        stats = [f.stat() for f in files]
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def current(self) -> RuleSet:
        try:
            stamp = self._current_stamp()
        except OSError as exc:
            self.last_error = str(exc)
            return self._rules
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._rules = load_rule_set(self.path, self.overlay)
                    self.last_error = None
                except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
                    self.last_error = str(exc)
                self._stamp = stamp
        return self._rules
