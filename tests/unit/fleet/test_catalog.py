"""Mapping a driver-reported model to a catalog type, and its price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.fleet.domain.catalog import UNKNOWN_GPU_TYPE, GpuType, match_gpu_type, price_gpu

H100 = GpuType(
    "h100-80gb",
    "NVIDIA",
    "NVIDIA H100 80GB HBM3",
    81920,
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"),
    Decimal("2.9900"),
    Decimal("1.4900"),
)
A100 = GpuType(
    "a100-80gb",
    "NVIDIA",
    "NVIDIA A100-SXM4-80GB",
    81920,
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
    Decimal("1.8900"),
    None,
)
T4 = GpuType(
    "t4", "NVIDIA", "Tesla T4", 16384, ("Tesla T4",), Decimal("0.3500"), Decimal("0.1600"), is_active=False
)
CATALOG = [H100, A100, T4]


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-80gb"),
        ("nvidia h100 80gb hbm3", "h100-80gb"),
        ("  NVIDIA   H100 PCIe ", "h100-80gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("TESLA T4", "t4"),  # a retired type still names its hardware
    ],
)
def test_reported_names_match_their_catalog_type(reported: str, expected: str) -> None:
    found = match_gpu_type(reported, CATALOG)
    assert found is not None and found.name == expected


@pytest.mark.parametrize(
    "reported", ["", "   ", "NVIDIA A100-SXM4-40GB", "NVIDIA H100", "AMD Instinct MI300X"]
)
def test_names_outside_the_catalog_do_not_match(reported: str) -> None:
    assert match_gpu_type(reported, CATALOG) is None


def test_unknown_model_is_typed_unknown_at_the_configured_price() -> None:
    got = price_gpu("Simulated GPU 9000", CATALOG, spot=False, unknown_price=Decimal("0.5000"))
    assert (got.gpu_type, got.cost_per_hour, got.known) == (UNKNOWN_GPU_TYPE, Decimal("0.5000"), False)


def test_on_demand_nodes_pay_the_reference_price_spot_nodes_the_spot_price() -> None:
    assert price_gpu(
        "NVIDIA H100 80GB HBM3", CATALOG, spot=False, unknown_price=Decimal(0)
    ).cost_per_hour == Decimal("2.9900")
    assert price_gpu(
        "NVIDIA H100 80GB HBM3", CATALOG, spot=True, unknown_price=Decimal(0)
    ).cost_per_hour == Decimal("1.4900")


def test_spot_node_without_a_spot_price_pays_the_reference_price() -> None:
    got = price_gpu("NVIDIA A100 80GB PCIe", CATALOG, spot=True, unknown_price=Decimal(0))
    assert (got.gpu_type, got.cost_per_hour, got.known) == ("a100-80gb", Decimal("1.8900"), True)
