"""Monitoring's handlers over the in-memory unit of work: ingestion idempotent by (GPU, instant) and
counted after commit, utilization per organization within the window limits, retention. No I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.monitoring.service_layer import commands
from services.monitoring.service_layer.handlers import handle
from shared.contracts.limits import DEFAULT_UTILIZATION_HOURS, MAX_UTILIZATION_HOURS
from shared.errors import InvalidArgument

from .fakes import CommitFailed, fake_dependencies
from .helpers import hold, metric, sample

INGESTED = "gpufleet_monitoring_samples_ingested_total"
BATCHES = "gpufleet_monitoring_ingest_batch_size_count"
BATCH_SAMPLES = "gpufleet_monitoring_ingest_batch_size_sum"
BATCH_SECONDS = "gpufleet_monitoring_ingest_batch_seconds_count"


async def test_a_redelivered_sample_is_stored_and_counted_once() -> None:
    deps, store = fake_dependencies()
    a, b = sample(uuid.uuid4(), store.now), sample(uuid.uuid4(), store.now)
    before = metric(INGESTED), metric(BATCHES), metric(BATCH_SAMPLES), metric(BATCH_SECONDS)

    assert await handle(commands.IngestSamples((a, b, a)), deps) == 2  # a repeated within the batch
    assert await handle(commands.IngestSamples((b,)), deps) == 0  # and the batch again later
    assert set(store.samples) == {(a.gpu_id, a.timestamp), (b.gpu_id, b.timestamp)}
    assert metric(INGESTED) - before[0] == 2
    assert metric(BATCHES) - before[1] == 2 and metric(BATCH_SAMPLES) - before[2] == 4
    assert metric(BATCH_SECONDS) - before[3] == 2


async def test_a_batch_that_fails_to_commit_counts_nothing_and_is_stored_on_redelivery() -> None:
    deps, store = fake_dependencies()
    s = sample(uuid.uuid4(), store.now)
    before = metric(INGESTED), metric(BATCHES)
    store.fail_next_commit = True
    with pytest.raises(CommitFailed):
        await handle(commands.IngestSamples((s,)), deps)
    assert store.samples == {} and (metric(INGESTED), metric(BATCHES)) == before
    assert await handle(commands.IngestSamples((s,)), deps) == 1
    assert metric(INGESTED) - before[0] == 1


async def test_an_empty_batch_opens_no_unit_of_work() -> None:
    deps, store = fake_dependencies()
    assert await handle(commands.IngestSamples(()), deps) == 0
    assert store.commits == 0


async def test_utilization_counts_only_the_organizations_samples_within_the_window() -> None:
    deps, store = fake_dependencies()
    org, other = uuid.uuid4(), uuid.uuid4()
    mine, theirs, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = store.now
    await store.allocations.save_holds(
        [hold(mine, org, now - timedelta(hours=31)), hold(theirs, other, now - timedelta(hours=1))]
    )
    await handle(
        commands.IngestSamples(
            (
                sample(mine, now - timedelta(minutes=2), 30.0, org, name="GPU 1"),
                sample(mine, now - timedelta(minutes=1), 70.0, org, name="GPU 1"),
                sample(mine, now - timedelta(hours=30), 100.0, org, name="GPU 1"),  # outside the day
                sample(theirs, now, 90.0, other),
                sample(idle, now, 0.0),
            )
        ),
        deps,
    )
    day = await handle(commands.GetUtilization(organization_id=org), deps)
    assert day.hours == DEFAULT_UTILIZATION_HOURS
    (gpu,) = day.gpus
    assert (gpu.gpu_id, gpu.samples, gpu.avg_utilization, gpu.max_utilization) == (mine, 2, 50.0, 70.0)
    two_days = await handle(commands.GetUtilization(organization_id=org, hours=48), deps)
    assert two_days.hours == 48 and two_days.gpus[0].samples == 3 and two_days.gpus[0].max_utilization == 100
    nobody = await handle(
        commands.GetUtilization(organization_id=uuid.uuid4(), hours=MAX_UTILIZATION_HOURS), deps
    )
    assert nobody.hours == MAX_UTILIZATION_HOURS and nobody.gpus == []


@pytest.mark.parametrize("hours", [-1, MAX_UTILIZATION_HOURS + 1, 10_000])
async def test_a_window_outside_the_limits_is_refused_before_any_query(hours: int) -> None:
    deps, store = fake_dependencies()
    with pytest.raises(InvalidArgument) as err:
        await handle(commands.GetUtilization(organization_id=uuid.uuid4(), hours=hours), deps)
    assert err.value.field == "hours" and str(MAX_UTILIZATION_HOURS) in err.value.message
    assert store.commits == 0


async def test_pruning_deletes_only_samples_past_retention() -> None:
    deps, store = fake_dependencies()
    gpu = uuid.uuid4()
    old, recent = sample(gpu, store.now - timedelta(hours=169)), sample(gpu, store.now - timedelta(hours=1))
    await handle(commands.IngestSamples((old, recent)), deps)
    assert await handle(commands.PruneSamples(retention_hours=168), deps) == 1
    assert list(store.samples.values()) == [recent]
    assert await handle(commands.PruneSamples(retention_hours=168), deps) == 0


async def test_a_retention_below_one_hour_is_a_wiring_error() -> None:
    deps, store = fake_dependencies()
    with pytest.raises(ValueError):
        await handle(commands.PruneSamples(retention_hours=0), deps)
    assert store.commits == 0
