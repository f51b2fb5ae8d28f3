"""Connectors to real providers, one module each. A module declares `CONNECTOR_TYPE` (the name
used in `PAY_CONNECTORS`) and `CLIENT` (its adapter class); `providers.registry` finds it."""
