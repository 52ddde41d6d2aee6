"""The fleet routes' merge of fleet's inventory with the scheduler's allocations, over fake stubs.

Fleet says what exists and how healthy it is; the scheduler says who holds what. The gateway must show
a held GPU as allocated, the holder's job id only to its own organization, and keep GpuOut's shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from gpufleet.v1 import common_pb2, fleet_pb2, scheduler_pb2

from services.gateway.entrypoints.auth import Caller
from services.gateway.entrypoints.routes import fleet as routes
from services.gateway.entrypoints.translate import UpstreamContractError

NODE = "16fd2706-8baf-433b-82eb-8c7fada847da"
GPUS = [f"7c9e6679-7425-40de-944b-e07fc1f90a{i:02d}" for i in range(5)]
MY_JOB = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
CALLER = Caller(
    principal=common_pb2.Principal(organization_id=NODE), metadata=(("authorization", "k"),), timeout=5
)


def gpu(i: int, status: str = "available") -> fleet_pb2.Gpu:
    return fleet_pb2.Gpu(
        id=GPUS[i],
        name=f"n1-gpu{i}",
        gpu_type="h100-80gb",
        node_id=NODE,
        node_name="n1",
        index=i,
        uuid=f"GPU-{i}",
        memory_total_mb=81920,
        status=status,
        cost_per_hour="2.50",
        provider="on-prem",
    )


@dataclass
class FakeFleet:
    gpus: list[fleet_pb2.Gpu]
    next_cursor: str = ""
    calls: list[Any] = field(default_factory=list)

    async def ListGpus(self, request, **kw):
        self.calls.append(("ListGpus", request, kw))
        return fleet_pb2.ListGpusResponse(
            gpus=[g for g in self.gpus if not request.status or g.status == request.status]
        )

    async def ListNodes(self, request, **kw):
        self.calls.append(("ListNodes", request, kw))
        node = fleet_pb2.Node(
            id=NODE,
            hostname="n1",
            provider="aws",
            is_spot=True,
            status="online",
            last_heartbeat="2025-01-02T03:04:05Z",
            cpu_cores=64,
            ram_mb=524288,
            labels={"rack": "r1"},
            gpus=self.gpus,
        )
        return fleet_pb2.ListNodesResponse(nodes=[node], next_cursor=self.next_cursor)


@dataclass
class FakeJobs:
    allocations: list[scheduler_pb2.GpuAllocation]
    calls: list[Any] = field(default_factory=list)

    async def ListAllocations(self, request, **kw):
        self.calls.append((request, kw))
        wanted = set(request.gpu_ids)
        return scheduler_pb2.ListAllocationsResponse(
            allocations=[a for a in self.allocations if not wanted or a.gpu_id in wanted]
        )


@dataclass
class FakeDownstream:
    fleet: FakeFleet
    jobs: FakeJobs


def downstream() -> FakeDownstream:
    fleet = FakeFleet([gpu(0), gpu(1), gpu(2), gpu(3, "unhealthy"), gpu(4, "offline")])
    jobs = FakeJobs(
        [
            scheduler_pb2.GpuAllocation(gpu_id=GPUS[0], job_id=MY_JOB, mine=True),
            # Another organization's job: the scheduler sends no job id; the gateway must not show one either.
            scheduler_pb2.GpuAllocation(gpu_id=GPUS[1], job_id="", mine=False),
            scheduler_pb2.GpuAllocation(gpu_id=GPUS[3], job_id=MY_JOB, mine=True),
        ]
    )
    return FakeDownstream(fleet, jobs)


async def test_gpus_show_the_schedulers_holder_with_the_job_only_for_its_owner() -> None:
    down = downstream()
    out = await routes.list_gpus(CALLER, down, status=None, gpu_type=None)  # type: ignore[arg-type]
    view = {g.id: (g.status, g.in_use, g.job_id) for g in out.gpus}
    assert view == {
        GPUS[0]: ("allocated", True, MY_JOB),
        GPUS[1]: ("allocated", True, None),
        GPUS[2]: ("available", False, None),
        GPUS[3]: ("unhealthy", True, MY_JOB),  # a held GPU that went unhealthy says so
        GPUS[4]: ("offline", False, None),
    }
    [(request, kw)] = down.jobs.calls
    assert sorted(request.gpu_ids) == sorted(GPUS) and kw["metadata"] == CALLER.metadata  # the caller's key
    assert set(out.gpus[0].model_dump()) >= {"id", "name", "status", "in_use", "cost_per_hour", "dedicated"}


@pytest.mark.parametrize(
    ("status", "fleet_filter", "expected"),
    [
        ("allocated", "available", [GPUS[0], GPUS[1]]),
        ("available", "available", [GPUS[2]]),
        ("unhealthy", "unhealthy", [GPUS[3]]),
        ("offline", "offline", [GPUS[4]]),
    ],
)
async def test_status_filters_apply_to_the_merged_status(status, fleet_filter, expected) -> None:
    down = downstream()
    out = await routes.list_gpus(CALLER, down, status=status, gpu_type="h100-80gb")  # type: ignore[arg-type]
    assert [g.id for g in out.gpus] == expected
    [(_, request, _)] = down.fleet.calls
    assert (request.status, request.gpu_type) == (fleet_filter, "h100-80gb")


async def test_no_gpus_means_no_scheduler_call() -> None:
    down = FakeDownstream(FakeFleet([]), FakeJobs([]))
    assert (await routes.list_gpus(CALLER, down, status=None, gpu_type=None)).gpus == []  # type: ignore[arg-type]
    assert down.jobs.calls == []


async def test_nodes_merge_health_and_holders() -> None:
    down = downstream()
    down.fleet.next_cursor = "abc"
    out = await routes.list_nodes(CALLER, down, limit=10, cursor="xyz")  # type: ignore[arg-type]
    [(_, request, _)] = down.fleet.calls
    assert (request.limit, request.cursor) == (10, "xyz")
    assert out.next_cursor == "abc"
    [node] = out.items
    assert (node.id, node.hostname, node.provider, node.spot, node.status) == (
        NODE,
        "n1",
        "aws",
        True,
        "online",
    )
    assert (node.cpu_cores, node.ram_mb, node.labels) == (64, 524288, {"rack": "r1"})
    assert node.last_heartbeat_at is not None and node.last_heartbeat_at.year == 2025
    assert [(g.index, g.health, g.status, g.job_id) for g in node.gpus] == [
        (0, "healthy", "allocated", MY_JOB),
        (1, "healthy", "allocated", None),
        (2, "healthy", "free", None),
        (3, "unhealthy", "allocated", MY_JOB),
        (4, "offline", "offline", None),
    ]
    assert node.gpus[0].model_dump().keys() == {
        "id",
        "uuid",
        "index",
        "gpu_type",
        "memory_mb",
        "health",
        "status",
        "job_id",
    }
    assert out.model_dump(mode="json")["items"][0]["gpus"][2]["job_id"] is None


async def test_draining_gpu_is_not_free() -> None:
    down = FakeDownstream(FakeFleet([gpu(0, "draining")]), FakeJobs([]))
    out = await routes.list_nodes(CALLER, down, limit=None, cursor=None)  # type: ignore[arg-type]
    assert [(g.health, g.status) for g in out.items[0].gpus] == [("draining", "offline")]
    assert down.fleet.calls[0][1].limit == 0 and out.next_cursor is None


async def test_a_job_id_the_scheduler_marks_as_not_mine_is_never_shown() -> None:
    # Defence in depth: even if the scheduler sent a job id with mine=false, the gateway drops it.
    down = FakeDownstream(
        FakeFleet([gpu(0)]),
        FakeJobs([scheduler_pb2.GpuAllocation(gpu_id=GPUS[0], job_id=MY_JOB, mine=False)]),
    )
    gpus = await routes.list_gpus(CALLER, down, status=None, gpu_type=None)  # type: ignore[arg-type]
    nodes = await routes.list_nodes(CALLER, down, limit=None, cursor=None)  # type: ignore[arg-type]
    assert gpus.gpus[0].job_id is None and nodes.items[0].gpus[0].job_id is None
    assert gpus.gpus[0].status == "allocated" and nodes.items[0].gpus[0].status == "allocated"


async def test_allocations_for_gpus_fleet_did_not_list_are_ignored() -> None:
    stray = scheduler_pb2.GpuAllocation(
        gpu_id="00000000-0000-4000-8000-000000000000", job_id=MY_JOB, mine=True
    )
    down = FakeDownstream(FakeFleet([gpu(2)]), FakeJobs([stray]))
    down.jobs.ListAllocations = _ignore_filter(down.jobs)  # type: ignore[method-assign]
    out = await routes.list_gpus(CALLER, down, status=None, gpu_type=None)  # type: ignore[arg-type]
    assert [(g.id, g.status) for g in out.gpus] == [(GPUS[2], "available")]


def _ignore_filter(jobs: FakeJobs):
    async def every_allocation(request, **kw):
        return scheduler_pb2.ListAllocationsResponse(allocations=jobs.allocations)

    return every_allocation


async def test_an_unknown_fleet_status_is_the_upstreams_fault() -> None:
    down = FakeDownstream(FakeFleet([gpu(0, "melted")]), FakeJobs([]))
    with pytest.raises(UpstreamContractError):
        await routes.list_nodes(CALLER, down, limit=None, cursor=None)  # type: ignore[arg-type]
