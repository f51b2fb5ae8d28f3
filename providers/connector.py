"""One declarative shape for every provider adapter.

A connector is a frozen spec: how it authenticates (`ApiKey`), where its endpoints are and how
our reference travels to them (`Endpoint`), where its error answers keep their code and what
those codes mean (`ErrorMap`, with `Envelope` for errors inside a 2xx answer), its statuses and
decline reasons in our words (`Vocabulary`), how it writes money (`Money`) and how it signs its
callbacks (`providers.signing.SignatureScheme`). The generic clients read it
(`providers.http.ProviderHttp` for authentication and errors; `providers.card`,
`providers.payments` and `providers.payout` for the flows and their own parts of the spec, such as
where a payment keeps our fields, `providers.payments.Fields`), so a dialect module is its spec
plus the few functions truly its own: request body builders, the player's next action, and for
a card acquirer its answer parsers.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import urlencode

import httpx

from providers.amounts import from_decimal_string, to_decimal_string
from providers.signing import COMMON_SCHEME, SignatureScheme
from providers.vocabulary import reason_code, translated, whole_minor

Path = tuple[str | int, ...]


def dig(data: Any, path: Path) -> Any:
    """`data[path[0]][path[1]]...` through objects (str keys) and lists (int indexes); None where
    a step is missing or of another shape."""
    for step in path:
        if isinstance(step, str) and isinstance(data, dict):
            data = data.get(step)
        elif isinstance(step, int) and isinstance(data, list) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


@dataclass(frozen=True)
class ApiKey:
    """The secret in one request header, after `prefix` ("Bearer " for the common APIs)."""

    header: str
    prefix: str = ""

    def headers(self, secret: str) -> dict[str, str]:
        return {self.header: self.prefix + secret}


BEARER = ApiKey("Authorization", "Bearer ")


@dataclass(frozen=True)
class Envelope:
    """Every answer, errors too, is `{<result>: <ok>, ...}`: an error may come inside a 2xx.
    Only the codes in `refusals` are documented as refused before processing."""

    result: str
    ok: str
    error: Path
    refusals: frozenset[str] = frozenset()

    def error_code(self, answer: Any) -> object:
        """The error code of an answer that is not `ok` (None when it is); an answer that is
        neither raises (an answer we cannot read)."""
        if answer[self.result] == self.ok:
            return None
        code = dig(answer, self.error)
        if code is None or code == "":
            raise ValueError(f"{self.result} is {answer[self.result]!r} without an error code")
        return code


@dataclass(frozen=True)
class ErrorMap:
    """Where a provider's error answer keeps its code (`path`) and the codes in ours; a code not
    in `codes` passes through after `prefix`, lower-cased if `lower`."""

    path: Path = ("code",)
    codes: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""
    lower: bool = False
    envelope: Envelope | None = None

    def ours(self, code: object) -> str:
        text = str(code)
        if text in self.codes:
            return self.codes[text]
        return self.prefix + (text.lower() if self.lower else text)

    def code_of(self, response: httpx.Response) -> str:
        """The code of an error answer in ours; `http_<status>` when it has none."""
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        code = dig(payload, self.path)
        if code is None or code == "":
            return f"http_{response.status_code}"
        return self.ours(code)


@dataclass(frozen=True)
class Vocabulary:
    """A provider's statuses (exhaustive: an unknown one is an unreadable answer) and decline
    reasons (an unknown one passes through, lower-cased) in ours."""

    statuses: Mapping[str, str]
    reasons: Mapping[str, str] = field(default_factory=dict)
    what: str = "status"

    def status(self, value: object) -> str:
        return translated(value, self.statuses, what=self.what)

    def reason(self, value: object) -> str | None:
        return reason_code(value, self.reasons)


@dataclass(frozen=True)
class Money:
    """How a provider writes an amount: `encode` our integer minor units for a request; `decode`
    an answer's amount, raising ValueError for a malformed one (an unreadable answer)."""

    name: str
    encode: Callable[[int], Any]
    decode: Callable[[object, str], int]  # (value, field name for the message) -> minor units


def _as_is(minor: int) -> int:
    return minor


def _whole_minor(value: object, name: str) -> int:
    return whole_minor(value, field=name)


def _decimal(value: object, name: str) -> int:
    return from_decimal_string(value)


MINOR_UNITS = Money("integer minor units", encode=_as_is, decode=_whole_minor)
DECIMAL_STRING = Money("decimal string of major units", to_decimal_string, _decimal)


class Request(NamedTuple):
    method: str
    path: str
    json: object = None
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Endpoint:
    """One of a provider's endpoints. `{reference}` in `path` stands for our reference; a
    `reference_field` carries it instead, in the JSON body, the form or the query (`encoding`)."""

    method: str
    path: str
    encoding: Literal["json", "form", "query"] = "json"
    reference_field: str | None = None

    def request(self, reference: str = "", body: Mapping[str, Any] | None = None) -> Request:
        path = self.path.format(reference=reference)
        fields = body
        if self.reference_field is not None:
            fields = {self.reference_field: reference, **(body or {})}
        if fields is None:
            return Request(self.method, path)
        if self.encoding == "query":
            return Request(self.method, f"{path}?{urlencode(fields)}")
        if self.encoding == "form":
            return Request(self.method, path, data=fields)
        return Request(self.method, path, json=fields)


@dataclass(frozen=True, kw_only=True)
class Connector:
    """What every adapter reads; the flows' endpoints and parsers are in the subclasses
    (`CardConnector`, `PaymentConnector`, `PayoutConnector`). The defaults are the common API's."""

    auth: ApiKey = BEARER
    errors: ErrorMap = ErrorMap()
    money: Money = MINOR_UNITS
    vocabulary: Vocabulary | None = None  # None: its answers are in our words already
    signature: SignatureScheme = COMMON_SCHEME
