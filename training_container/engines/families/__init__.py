"""The family adapters of the diffusers engine, one module per base-model family.

``adapter_for`` picks the adapter from the family's ``FamilySpec`` (functions.domain.families);
tests/container/test_family_adapters.py requires one for every family.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from functions.domain.families import FamilySpec, FmType
from training_container.engines.families.base import FamilyAdapter
from training_container.engines.families.flux1 import Flux1Adapter
from training_container.engines.families.sd15 import SD15Adapter
from training_container.engines.families.sd35 import SD35Adapter
from training_container.engines.families.sdxl import SDXLAdapter

ADAPTERS: Mapping[FmType, type[FamilyAdapter]] = MappingProxyType(
    {adapter.fm_type: adapter for adapter in (SD15Adapter, SDXLAdapter, Flux1Adapter, SD35Adapter)}
)


def adapter_for(spec: FamilySpec) -> type[FamilyAdapter]:
    """The adapter class that trains ``spec``'s family."""
    return ADAPTERS[spec.fm_type]
