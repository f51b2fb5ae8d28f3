"""`python -m providers.check NAME`: are this provider's credentials and connection right?

One harmless authenticated call through the provider's configured connector: the status of an
order that cannot exist (`check-<random>`). "Not found" is the healthy answer: the provider was
reached and accepted our credentials. Exit 0 when it works, 1 with what to fix when it does not.
"""

import argparse
import asyncio
import sys
import uuid

from config import get_settings
from providers.card import CardProviderClient
from providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnreachable,
)
from providers.payments import PaymentProviderClient
from providers.registry import build_client, connector_class, provider_http_client


async def check(name: str) -> tuple[bool, str]:
    settings = get_settings()
    if settings.provider_rule(name) is None and name not in settings.connectors:
        known = ", ".join(rule.name for rule in settings.providers)
        return False, f"no provider {name!r} configured (PAY_PROVIDERS has {known})"
    try:
        kind = connector_class(settings, name)
    except ValueError as exc:
        return False, f"{exc}: fix its type in PAY_CONNECTORS"
    where = settings.provider_base_url(name)
    reference = f"check-{uuid.uuid4().hex[:12]}"
    async with provider_http_client(settings) as http:
        client = build_client(settings, http, name, kind)
        try:
            found: object
            if isinstance(client, CardProviderClient):
                found = await client.get_charge(reference)
            elif isinstance(client, PaymentProviderClient):
                found = await client.get_payment(reference)
            else:
                return False, f"{name}: connector {kind.__name__} has no status inquiry to try"
        except ProviderRejected as exc:
            return False, (
                f"{name} at {where} refused our credentials or request ({exc.code}): check the "
                "API key / client id and secret in PAY_CONNECTORS or PAY_PROVIDER_SECRETS"
            )
        except ProviderThrottled:
            return False, f"{name} at {where} is throttling us (429): try again in a minute"
        except ProviderUnreachable as exc:
            return False, f"{name} at {where} cannot be reached ({exc.detail or exc.code}): check "
            "base_url, DNS, firewall and the client certificate"
        except ProviderError as exc:
            return False, f"{name} at {where} answered with an error ({exc.code}): try again"
    if found is not None:
        return False, f"{name} at {where} claims to know {reference}: is it really the provider?"
    return True, f"{name} ({settings.connector(name).type}) at {where}: reachable, credentials OK"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.check", description=__doc__)
    parser.add_argument("name", help="the provider's name, as in PAY_PROVIDERS / PAY_CONNECTORS")
    args = parser.parse_args(argv)
    ok, message = asyncio.run(check(args.name))
    print(("OK: " if ok else "FAILED: ") + message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
