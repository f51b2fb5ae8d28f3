"""What can go wrong talking to a provider, classified once, in the terms the workflows decide on.

The one question that matters for money: may the provider have processed the request?

ProviderError
├── ProviderNotProcessed     the provider says it did not (or the request never left): another
│   │                        provider may be tried
│   ├── ProviderUnreachable  the request never left: connect error, DNS, connection refused
│   ├── ProviderThrottled    429: refused before processing; wait `retry_after` and ask again
│   │                        at the same provider
│   └── ProviderRejected     a refusal the provider documents as made before processing:
│       │                    validation, authentication, a documented decline or conflict
│       └── CardRejected     the card data itself is invalid (bad number, expired)
└── ProviderOutcomeUnknown   anything else: a 5xx, an error after the request was sent (read
    │                        error, connection reset), an answer we cannot read. Only an
    │                        inquiry at the same provider, under the same reference, settles it
    └── ProviderTimeout      no answer in time
"""


class ProviderError(Exception):
    def __init__(self, provider: str, code: str, detail: str = "") -> None:
        super().__init__(f"{provider}: {code}{': ' + detail if detail else ''}")
        self.provider = provider
        self.code = code
        self.detail = detail


class ProviderNotProcessed(ProviderError):
    """The provider did not process the request; nothing happened there."""


class ProviderUnreachable(ProviderNotProcessed):
    """The request never left this process (connect error, DNS, refused connection)."""


class ProviderThrottled(ProviderNotProcessed):
    """429: the provider refused before processing and asks us to come back later."""

    def __init__(
        self, provider: str, code: str, detail: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, code, detail)
        self.retry_after = retry_after


class ProviderRejected(ProviderNotProcessed):
    """A documented refusal before processing; sending the same request again will not help."""


class CardRejected(ProviderRejected):
    pass


class ProviderOutcomeUnknown(ProviderError):
    """The provider may have processed the request: settle it there by inquiry."""


class ProviderTimeout(ProviderOutcomeUnknown):
    pass


def outcome_known(exc: ProviderError) -> bool:
    """Whether nothing can have happened at the provider, so another one may be tried."""
    return isinstance(exc, ProviderNotProcessed)
