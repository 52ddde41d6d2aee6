"""The migration and the GPU type fixture."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.migrate import migrate_service

from .conftest import Fleet

pytestmark = pytest.mark.integration


async def catalog(fleet: Fleet) -> list[tuple]:
    async with fleet.db.transaction(system=True) as s:
        return [
            tuple(r)
            for r in (
                await s.execute(
                    text(
                        "SELECT name, nvml_names, reference_price_per_hour, updated_at FROM gpu_types ORDER BY name"
                    )
                )
            ).all()
        ]


async def test_gpu_type_fixture_is_idempotent(fleet: Fleet, postgres) -> None:
    before = await catalog(fleet)
    assert len(before) == 10
    assert await migrate_service(postgres.admin_url, "fleet") == []  # nothing new; the fixture runs again
    assert await catalog(fleet) == before  # same rows, not even updated_at touched


async def test_gpu_type_fixture_repairs_edited_rows(fleet: Fleet, postgres) -> None:
    async with fleet.db.transaction(system=True) as s:
        await s.execute(text("UPDATE gpu_types SET reference_price_per_hour = 99 WHERE name = 't4'"))
    await migrate_service(postgres.admin_url, "fleet")
    async with fleet.db.transaction(system=True) as s:
        price = (
            await s.execute(text("SELECT reference_price_per_hour FROM gpu_types WHERE name = 't4'"))
        ).scalar()
    assert str(price) == "0.3500"


async def test_nvml_names_match_case_insensitively_in_the_catalog(fleet: Fleet) -> None:
    names = {n for _, nvml, _, _ in await catalog(fleet) for n in nvml}
    for reported in ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "Tesla T4"):
        assert reported in names
