"""The GPU type catalog and the rule that names a driver-reported model with a catalog type."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

UNKNOWN_GPU_TYPE = "unknown"


@dataclass(frozen=True)
class GpuType:
    name: str  # catalog key, e.g. "h100-80gb"
    vendor: str
    model: str  # marketing name
    memory_mb: int
    nvml_names: tuple[str, ...]
    reference_price_per_hour: Decimal
    spot_price_per_hour: Decimal | None = None
    is_active: bool = True

    def price_per_hour(self, *, spot: bool) -> Decimal:
        """Spot capacity is billed at the spot price where the catalog has one."""
        if spot and self.spot_price_per_hour is not None:
            return self.spot_price_per_hour
        return self.reference_price_per_hour


@dataclass(frozen=True)
class TypeMatch:
    """What a reported GPU is called and what it costs; ``known`` is False for a model outside the catalog."""

    gpu_type: str
    cost_per_hour: Decimal
    known: bool


def _normalize(name: str) -> str:
    # Drivers differ in case and spacing ("NVIDIA  A100-SXM4-80GB", "nvidia a100-sxm4-80gb").
    return " ".join(name.split()).casefold()


def match_gpu_type(model: str, catalog: Iterable[GpuType]) -> GpuType | None:
    """The catalog type whose ``nvml_names`` contain ``model`` (case- and whitespace-insensitive)."""
    wanted = _normalize(model)
    if not wanted:
        return None
    for gpu_type in catalog:
        if any(_normalize(n) == wanted for n in gpu_type.nvml_names):
            return gpu_type
    return None


def price_gpu(model: str, catalog: Iterable[GpuType], *, spot: bool, unknown_price: Decimal) -> TypeMatch:
    """Type and hourly price for a reported model; an unknown model is typed ``unknown`` at ``unknown_price``.

    Retired (inactive) types still match: the hardware exists and keeps its price; ``is_active`` only
    decides what the catalog offers to tenants."""
    found = match_gpu_type(model, catalog)
    if found is None:
        return TypeMatch(UNKNOWN_GPU_TYPE, unknown_price, known=False)
    return TypeMatch(found.name, found.price_per_hour(spot=spot), known=True)
