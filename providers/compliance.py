"""The compliance ports the API and the worker share: the exclusion registers (cached) and the
unified accounting system (ESU), built from settings over the shared HTTP client."""

from dataclasses import dataclass

import httpx

from config import Settings
from domain.compliance.esu import UnifiedAccounting
from providers.esu import unified_accounting
from providers.registers import CachedExclusionRegistry, exclusion_registry


@dataclass(frozen=True)
class CompliancePorts:
    registry: CachedExclusionRegistry
    esu: UnifiedAccounting


def compliance_ports(settings: Settings, http: httpx.AsyncClient) -> CompliancePorts:
    return CompliancePorts(
        registry=exclusion_registry(settings, http), esu=unified_accounting(settings, http)
    )
