"""The metrics-batch converter, table-tested: a batch of node records -> one IngestSamples. No I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.monitoring.domain.samples import GpuSample
from services.monitoring.entrypoints.consumers import metrics_batch_handler, to_command
from services.monitoring.service_layer import commands
from shared.events import Envelope

from .fakes import fake_dependencies
from .helpers import record, wire_sample

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
G1, G2, G3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ORG = uuid.uuid4()


@pytest.mark.parametrize(
    ("batch", "gpus"),
    [
        ([], None),
        ([record([])], None),  # a node with no GPUs reports nothing
        ([record([]), record([])], None),
        ([record([wire_sample(G1, NOW)])], [G1]),
        (
            [
                record([wire_sample(G1, NOW), wire_sample(G2, NOW)]),
                record([]),
                record([wire_sample(G3, NOW)]),
            ],
            [G1, G2, G3],
        ),
        (
            [record([wire_sample(G1, NOW)]), record([wire_sample(G1, NOW)])],
            [G1, G1],
        ),  # redelivery kept: the sink skips it
    ],
)
def test_every_sample_of_every_record_in_order(batch: list[Envelope], gpus: list[uuid.UUID] | None) -> None:
    cmd = to_command(batch)
    if gpus is None:
        assert cmd is None
    else:
        assert isinstance(cmd, commands.IngestSamples) and [s.gpu_id for s in cmd.samples] == gpus


def test_a_sample_keeps_its_node_readings_and_the_agents_claim_as_a_claim() -> None:
    node, job = uuid.uuid4(), uuid.uuid4()
    wire = wire_sample(G1, NOW, 87.456, ORG).model_copy(update={"job_id": job})
    idle = wire_sample(G2, NOW).model_copy(update={"power_usage_w": None, "temperature_c": None})
    cmd = to_command([record([wire, idle], node)])
    assert cmd is not None
    assert cmd.samples == (
        GpuSample(
            node_id=node, gpu_id=G1, gpu_name="GPU 0", gpu_type="a100", timestamp=NOW, gpu_utilization=87.456,
            memory_used_mb=1000, memory_total_mb=40_960, power_usage_w=200.0, temperature_c=60.0,
            claimed_job_id=job, claimed_organization_id=ORG,
        ),
        GpuSample(
            node_id=node, gpu_id=G2, gpu_name="GPU 0", gpu_type="a100", timestamp=NOW, gpu_utilization=50.0,
            memory_used_mb=1000, memory_total_mb=40_960,
        ),
    )  # fmt: skip


async def test_the_sink_stores_a_batch_and_skips_an_empty_one() -> None:
    deps, store = fake_dependencies()
    sink = metrics_batch_handler(deps)
    await sink([record([])])
    assert store.commits == 0
    await sink([record([wire_sample(G1, NOW), wire_sample(G2, NOW)])])
    assert store.commits == 1 and len(store.samples) == 2
