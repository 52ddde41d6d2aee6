"""Caches kept fresh in the background while used (service_layer/freshness.py): a submit on a quiet
system finds the limits younger than their refresh interval and reads nothing itself; a change made
elsewhere is still taken in within that interval; a cache no longer used stops reading."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from services.scheduler.domain.limits import Limits
from services.scheduler.service_layer.freshness import KeptFresh
from services.scheduler.service_layer.limits import LimitsStore

from .test_limits import FakeLimitsRepo, FakeLimitsUnit


class RecordingRepo(FakeLimitsRepo):
    """Records which task read the version: the caller's, or the background one."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[str] = []

    def __call__(self, *, org_id=None, system=False):  # type: ignore[no-untyped-def]
        repo = self

        class _Unit(FakeLimitsUnit):
            async def version(self) -> int:
                task = asyncio.current_task()
                repo.readers.append(task.get_name() if task else "")
                return await super().version()

        @asynccontextmanager
        async def unit():  # type: ignore[no-untyped-def]
            yield _Unit(self.tables)

        return unit()


async def test_while_used_the_limits_are_read_in_the_background_and_a_change_is_seen_within_the_interval() -> (
    None
):
    repo = RecordingRepo()
    store = LimitsStore(repo, refresh_s=0.5)
    try:
        await store.refresh()  # the first use reads on demand
        assert len(repo.readers) == 1 and not repo.readers[0].startswith("keep-fresh")
        repo.tables["plans"]["free"] = Limits(3, 1.0, 1)
        repo.tables["version"] += 1  # a change through another replica
        seen_at = None
        for i in range(30):  # 1.5 s of submits, one every 50 ms
            await asyncio.sleep(0.05)
            if (await store.refresh()).plans["free"] == Limits(3, 1.0, 1) and seen_at is None:
                seen_at = i
        assert seen_at is not None and seen_at <= 10  # within refresh_s (0.5 s)
        assert len(repo.readers) >= 3
        assert all(r == "keep-fresh-limits" for r in repo.readers[1:]), repo.readers
    finally:
        await store.close()


async def test_a_cache_no_longer_used_stops_reading_and_close_stops_it() -> None:
    reloads = 0

    async def reload() -> None:
        nonlocal reloads
        reloads += 1

    kept = KeptFresh(reload, 0.05, keep_s=0.2)
    kept.used()
    await asyncio.sleep(0.5)
    after_keep = reloads
    assert 2 <= after_keep
    await asyncio.sleep(0.2)
    assert reloads == after_keep  # not used for keep_s: no more reads
    kept.used()
    await asyncio.sleep(0.1)
    assert reloads > after_keep  # used again: kept fresh again
    await kept.close()
    stopped = reloads
    await asyncio.sleep(0.1)
    assert reloads == stopped


async def test_a_failing_reload_ends_the_keeper_and_the_next_use_starts_another() -> None:
    calls = 0

    async def reload() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")

    kept = KeptFresh(reload, 0.05, keep_s=1.0)
    kept.used()
    await asyncio.sleep(0.2)
    assert calls == 1  # no retrying into a database that is down (or gone: a test's, disposed)
    kept.used()
    await asyncio.sleep(0.2)
    await kept.close()
    assert calls >= 3
