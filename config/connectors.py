"""How the platform reaches each provider: a connector type, where it is, its credentials and
what it can do. Providers are configuration (`PAY_CONNECTORS`): pointing one at a real sandbox
is a change of this entry, never of code. Several providers may share a connector type (two
terminals of one acquirer). An entry left out gets the embedded default: the provider's own
connector type at the simulator (`{simulator_url}/providers/{name}`) with the development
secrets of `PAY_PROVIDER_SECRETS`.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# The connector type each default provider speaks (providers.registry.CONNECTOR_TYPES).
DEFAULT_CONNECTOR_TYPES: dict[str, str] = {
    "kazbank": "kazbank",
    "halyk": "halyk_epay",
    "freedom": "freedom_pay",
    "freedom_wallet": "freedom_pay_wallet",
    "cloudpayments": "cloudpayments",
    "kaspi_qr": "kaspi",
    "kaspi_pay": "kaspi",
    "ioka": "ioka",
}


class ConnectorConfig(BaseModel):
    """One provider's connection. Secrets left empty fall back to `PAY_PROVIDER_SECRETS`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="connector type, e.g. halyk_epay, kaspi, common_card")
    base_url: str | None = Field(
        default=None, description="the provider's API root; empty: the simulator"
    )
    api_key: SecretStr | None = Field(default=None, description="API key or merchant secret")
    api_secret: SecretStr | None = Field(default=None, description="second half of Basic auth")
    merchant_id: str | None = Field(default=None, description="merchant, terminal or public id")
    client_id: str | None = Field(default=None, description="OAuth2 client id")
    client_secret: SecretStr | None = Field(default=None, description="OAuth2 client secret")
    webhook_secret: SecretStr | None = Field(
        default=None, description="verifies callbacks; kept apart from the API secret"
    )
    payout_secret: SecretStr | None = Field(default=None, description="signs payout requests")
    client_cert_file: Path | None = Field(default=None, description="mutual TLS certificate")
    client_key_file: Path | None = Field(default=None, description="mutual TLS key")
    timeout_seconds: float | None = Field(default=None, gt=0, description="HTTP timeout")
    cancels_unknown_orders: bool = Field(
        default=False,
        description="a cancel of an order it never saw closes the reference (else: 404, and "
        "the processing window is waited out)",
    )
    refunds: bool = True
    payouts: bool = False
    callbacks: bool = Field(default=True, description="false: status polling only")


def default_connector(name: str, *, card: bool) -> ConnectorConfig:
    fallback = "common_card" if card else "common_payments"
    return ConnectorConfig(type=DEFAULT_CONNECTOR_TYPES.get(name, fallback))
