"""Connectors to real providers, one module each. A module declares `CONNECTOR_TYPE` (the name
used in `PAY_CONNECTORS`) and `CLIENT` (its adapter class), and `PAYOUT_CLIENT` where the
provider pays out; `providers.registry` finds it."""

import importlib
import pkgutil
from functools import cache
from types import ModuleType


@cache
def modules_by_type(package: str) -> dict[str, ModuleType]:
    """The modules of `package` that declare a `CONNECTOR_TYPE`, by that type (imported once;
    the simulator finds its twins of the connectors the same way)."""
    found: dict[str, ModuleType] = {}
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        kind = getattr(module, "CONNECTOR_TYPE", None)
        if isinstance(kind, str):
            found[kind] = module
    return found
