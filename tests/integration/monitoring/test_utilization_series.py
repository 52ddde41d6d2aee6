"""GetUtilizationSeries against real PostgreSQL: buckets equal hand-computed means of hand-inserted
samples; only the caller's samples count (the same rule as GetUtilization); bad windows and steps are
refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from gpufleet.v1 import monitoring_pb2

from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1, GpuSampleV1
from shared.events import Envelope
from shared.wire import ts

from .conftest import Monitoring

pytestmark = pytest.mark.integration

# Recent (retention rounds of other tests delete samples older than a week), on a whole minute.
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)


def sample(gpu: uuid.UUID, name: str, org: uuid.UUID | None, util: float, at: datetime) -> GpuSampleV1:
    return GpuSampleV1(
        gpu_id=gpu,
        gpu_name=name,
        gpu_type="a100",
        timestamp=at,
        gpu_utilization=util,
        memory_used_mb=int(util * 100),
        memory_total_mb=40_960,
        organization_id=org,
        job_id=uuid.uuid4() if org else None,
    )


NODE = uuid.uuid4()


def record(*samples: GpuSampleV1) -> Envelope:
    return Envelope(
        type=GPU_METRICS_SAMPLED,
        source="gpufleet/agent",
        data=GpuMetricsSampledV1(node_id=NODE, samples=list(samples)),
    )


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def two_gpus(monitoring: Monitoring) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """Org A's GPUs g1 ("GPU a") and g2 ("GPU b") over five minutes, with samples that must not count:
    idle, another organization's, and just outside the window at either end."""
    a, b = uuid.uuid4(), uuid.uuid4()
    g1, g2 = uuid.uuid4(), uuid.uuid4()
    # Whose the samples are: the scheduler's allocations (the samples' own claims agree, and decide nothing).
    await monitoring.allocate([g1], a, NODE, s(-10), s(150))
    await monitoring.allocate([g1], b, NODE, s(150))
    await monitoring.allocate([g2], a, NODE, s(-10), s(50))
    await monitoring.allocate([g2], a, NODE, s(250))
    await monitoring.consume(
        [
            record(sample(g1, "GPU a", a, 50, s(10)), sample(g2, "GPU b", a, 20, s(30))),
            record(sample(g1, "GPU a", a, 70, s(40)), sample(g2, "GPU b", None, 99, s(60))),
            record(sample(g1, "GPU a", a, 100, s(120)), sample(g1, "GPU a", b, 90, s(180))),
            record(sample(g2, "GPU b", a, 40, s(299.5)), sample(g2, "GPU b", a, 80, s(300))),
            record(sample(g1, "GPU a", a, 80, s(-1))),
        ]
    )
    return a, b, g1, g2


def points(series: monitoring_pb2.GpuUtilizationSeries) -> list[tuple[str, float, int, int]]:
    return [(p.t, p.utilization, p.memory_used_mb, p.samples) for p in series.points]


async def test_buckets_are_means_of_the_callers_samples_per_gpu_and_across(monitoring: Monitoring) -> None:
    a, _, g1, g2 = await two_gpus(monitoring)
    reply = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(from_time=ts(T0), to_time=ts(s(300)), step_seconds=60),
        metadata=monitoring.identity.key(a),
    )
    assert (reply.from_time, reply.to_time, reply.step_seconds) == (ts(T0), ts(s(300)), 60)
    assert [(x.gpu_id, x.gpu_name, x.gpu_type) for x in reply.series] == [
        (str(g1), "GPU a", "a100"),
        (str(g2), "GPU b", "a100"),
    ]
    assert points(reply.series[0]) == [(ts(T0), 0.6, 6000, 2), (ts(s(120)), 1.0, 10000, 1)]
    assert points(reply.series[1]) == [(ts(T0), 0.2, 2000, 1), (ts(s(240)), 0.4, 4000, 1)]
    assert [(p.t, p.utilization, p.gpus) for p in reply.aggregate] == [
        (ts(T0), 0.4, 2),
        (ts(s(120)), 1.0, 1),
        (ts(s(240)), 0.4, 1),
    ]


async def test_one_gpu_and_another_organizations_view(monitoring: Monitoring) -> None:
    a, b, g1, g2 = await two_gpus(monitoring)
    window = {"from_time": ts(T0), "to_time": ts(s(300)), "step_seconds": 60}
    only_g2 = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(gpu_id=str(g2), **window),
        metadata=monitoring.identity.key(a),
    )
    assert [x.gpu_id for x in only_g2.series] == [str(g2)]
    assert [(p.t, p.utilization, p.gpus) for p in only_g2.aggregate] == [
        (ts(T0), 0.2, 1),
        (ts(s(240)), 0.4, 1),
    ]

    theirs = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(**window), metadata=monitoring.identity.key(b)
    )
    assert [(x.gpu_id, points(x)) for x in theirs.series] == [(str(g1), [(ts(s(180)), 0.9, 9000, 1)])]
    # g2 never ran b's jobs: asking for it by id shows nothing (not even that it exists).
    g2_for_b = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(gpu_id=str(g2), **window),
        metadata=monitoring.identity.key(b),
    )
    assert (list(g2_for_b.series), list(g2_for_b.aggregate)) == ([], [])


async def test_the_default_window_is_the_last_hour_in_at_most_500_points(monitoring: Monitoring) -> None:
    org, gpu = uuid.uuid4(), uuid.uuid4()
    await monitoring.allocate([gpu], org, NODE, datetime.now(UTC) - timedelta(minutes=10))
    await monitoring.consume(
        [record(sample(gpu, "GPU z", org, 30, datetime.now(UTC) - timedelta(minutes=5)))]
    )
    reply = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(), metadata=monitoring.identity.key(org)
    )
    start, end = datetime.fromisoformat(reply.from_time), datetime.fromisoformat(reply.to_time)
    assert end - start == timedelta(hours=1) and reply.step_seconds == 10
    assert [(x.gpu_id, [(p.utilization, p.samples) for p in x.points]) for x in reply.series] == [
        (str(gpu), [(0.3, 1)])
    ]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"from_time": ts(T0), "to_time": ts(s(3600)), "step_seconds": 7}, "step"),  # 515 points
        ({"step_seconds": -5}, "step"),
        ({"from_time": ts(s(60)), "to_time": ts(T0)}, "from"),
        ({"from_time": ts(T0 - timedelta(days=31)), "to_time": ts(T0)}, "from"),
        ({"from_time": "an hour ago"}, "from"),
        ({"gpu_id": "gpu-0"}, "gpu_id"),
    ],
)
async def test_bad_windows_steps_and_ids_are_invalid_arguments(
    monitoring: Monitoring, request_: dict, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await monitoring.stub.GetUtilizationSeries(
            monitoring_pb2.GetUtilizationSeriesRequest(**request_),
            metadata=monitoring.identity.key(uuid.uuid4()),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("gpufleet-error-field", field) in [(k, v) for k, v in err.value.trailing_metadata() or ()]


async def test_a_step_of_exactly_500_points_is_accepted(monitoring: Monitoring) -> None:
    reply = await monitoring.stub.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(from_time=ts(T0), to_time=ts(s(500)), step_seconds=1),
        metadata=monitoring.identity.key(uuid.uuid4()),
    )
    assert reply.step_seconds == 1 and list(reply.series) == []
