"""Simulated real providers, one module per connector type, speaking that provider's API over
the simulator's common payment model (cards: `simulator.cards.CardProvider`; the rest:
`simulator.payments.AsyncProvider`), so that every behaviour knob and admin view applies.

A module declares:
- `CONNECTOR_TYPE`: the type name, as in `PAY_CONNECTORS` / `config.connectors`;
- `router(registry) -> fastapi.APIRouter`: its API under `/providers/{name}/...`, answering only
  for providers whose connector type is this one (`registry.speaks(name, CONNECTOR_TYPE)`);
- optionally `encode_callback(secret, event) -> (body, headers)`: how it writes and signs a
  callback (`event` has reference, provider_payment_id, status, amount, ordered_amount,
  currency, decline_code, event_id, sent_at); `CALLBACKS = False` when it sends none (polling).
"""

from types import ModuleType

from providers.connectors import modules_by_type


def plugins() -> dict[str, ModuleType]:
    """Connector type -> its simulator module."""
    return modules_by_type(__name__)
