"""What can go wrong talking to a provider, in the terms the workflows decide on.

ProviderError
├── ProviderUnavailable   5xx or no connection: nothing known to have happened; retry
├── ProviderTimeout       no answer in time: the outcome is unknown; inquire before retrying
└── ProviderRejected      4xx: our request is wrong; retrying will not help
    └── CardRejected      the card data itself is invalid (bad number, expired)
"""


class ProviderError(Exception):
    def __init__(self, provider: str, code: str, detail: str = "") -> None:
        super().__init__(f"{provider}: {code}{': ' + detail if detail else ''}")
        self.provider = provider
        self.code = code
        self.detail = detail


class ProviderUnavailable(ProviderError):
    pass


class ProviderTimeout(ProviderError):
    pass


class ProviderRejected(ProviderError):
    pass


class CardRejected(ProviderRejected):
    pass
