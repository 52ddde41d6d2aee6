"""Registration rules and the GPU status machine (plain objects, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from services.fleet.domain.events import GpuRegistered, GpuStatusChanged
from services.fleet.domain.model import GPU_STATUSES, Gpu, Node, NodeRegistration, ReportedGpu
from shared.errors import InvalidArgument

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def registration(**overrides) -> NodeRegistration:
    base = NodeRegistration(
        hostname="node-a",
        provider="",
        gpu_backend="simulated",
        driver_version=" 550.54 ",
        agent_version="",
        organization_id=None,
        is_spot=False,
        gpus=(ReportedGpu(0, "GPU-aaa", "NVIDIA L4", 24576), ReportedGpu(1, "GPU-bbb", "NVIDIA L4", 24576)),
    )
    return replace(base, **overrides)


def new_gpu(**overrides) -> Gpu:
    reg = registration().validated()
    node = Node.register(reg, NOW, None)
    gpu = Gpu.register(node, reg.gpus[0], "l4", Decimal("0.7000"), NOW, None)
    gpu.pull_events()
    for key, value in overrides.items():
        setattr(gpu, key, value)
    return gpu


def reregister(gpu: Gpu, price: str = "0.7000") -> Gpu:
    """The same node (same id) registering the same card again."""
    reg = registration().validated()
    node = replace(Node.register(reg, NOW, None), id=gpu.node_id)
    return Gpu.register(node, reg.gpus[0], "l4", Decimal(price), NOW, gpu)


class TestRegistration:
    def test_fills_defaults_and_trims(self) -> None:
        reg = registration(hostname="  node-a ").validated()
        assert (reg.hostname, reg.provider, reg.driver_version, reg.agent_version) == (
            "node-a",
            "on-prem",
            "550.54",
            None,
        )

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"hostname": "  "}, "hostname"),
            ({"gpu_backend": "cuda"}, "gpu_backend"),
            ({"gpu_backend": ""}, "gpu_backend"),
            ({"gpus": ()}, "gpus"),
            ({"gpus": (ReportedGpu(0, "a", "m", 1), ReportedGpu(0, "b", "m", 1))}, "gpus[1].index"),
            ({"gpus": (ReportedGpu(0, "a", "m", 1), ReportedGpu(1, "a", "m", 1))}, "gpus[1].uuid"),
            ({"gpus": (ReportedGpu(0, "a", "m", 0),)}, "gpus[0].memory_total_mb"),
            ({"gpus": (ReportedGpu(-1, "a", "m", 1),)}, "gpus[0].index"),
            ({"gpus": (ReportedGpu(0, " ", "m", 1),)}, "gpus[0].uuid"),
            ({"cpu_cores": -1}, "cpu_cores"),
            ({"cpu_cores": 10**6}, "cpu_cores"),
            ({"ram_mb": -1}, "ram_mb"),
            ({"labels": {"bad key": "x"}}, "labels"),
            ({"labels": {"rack": "has space"}}, "labels"),
            ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
        ],
    )
    def test_rejects_bad_input_naming_the_field(self, overrides: dict, field: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            registration(**overrides).validated()
        assert err.value.field == field

    def test_node_keeps_its_id_across_registrations(self) -> None:
        first = Node.register(registration().validated(), NOW, None)
        first.status = "offline"
        again = Node.register(registration(agent_version="2").validated(), NOW, first)
        assert again.id == first.id and again.status == "online" and again.agent_version == "2"


class TestGpuRegistration:
    def test_new_gpu_is_available_named_after_its_node_and_announced(self) -> None:
        reg = registration(organization_id=uuid4()).validated()
        node = Node.register(reg, NOW, None)
        gpu = Gpu.register(node, reg.gpus[1], "l4", Decimal("0.7000"), NOW, None)
        (event,) = gpu.pull_events()
        assert isinstance(event, GpuRegistered)
        assert (gpu.name, gpu.status, gpu.revision) == ("node-a-gpu1", "available", 1)
        assert event.gpu.organization_id == reg.organization_id and event.gpu.revision == 1

    def test_unchanged_reregistration_keeps_the_id_and_announces_nothing(self) -> None:
        gpu = new_gpu()
        again = reregister(gpu)
        assert again.id == gpu.id and again.pull_events() == [] and again.revision == 1

    def test_changed_price_is_announced_with_the_next_revision(self) -> None:
        gpu = new_gpu()
        reregister(gpu, "0.9000")
        (event,) = gpu.pull_events()
        assert event.gpu.cost_per_hour == Decimal("0.9000") and event.gpu.revision == 2

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            ("offline", "available"),
            ("unhealthy", "available"),
            ("available", "available"),
            ("draining", "draining"),
        ],
    )
    def test_reregistered_gpu_comes_back_usable_unless_drained(self, before: str, after: str) -> None:
        gpu = new_gpu(status=before)
        reregister(gpu)
        assert gpu.status == after


class TestHealth:
    def test_unhealthy_report_is_announced_once(self) -> None:
        gpu = new_gpu()
        assert gpu.apply_health_report(True, NOW)
        assert not gpu.apply_health_report(True, NOW)
        (event,) = gpu.pull_events()
        assert isinstance(event, GpuStatusChanged) and event.gpu.status == "unhealthy"

    def test_gpu_not_reported_unhealthy_recovers(self) -> None:
        gpu = new_gpu(status="unhealthy")
        assert gpu.apply_health_report(False, NOW) and gpu.status == "available"
        assert gpu.pull_events()[0].gpu.status == "available"

    def test_offline_gpu_of_a_live_node_is_back(self) -> None:
        gpu = new_gpu()
        assert gpu.mark_offline(NOW, "missed heartbeats") and not gpu.mark_offline(NOW, "again")
        assert gpu.apply_health_report(False, NOW) and gpu.status == "available"
        assert [e.gpu.status for e in gpu.pull_events()] == ["offline", "available"]
        assert gpu.revision == 3

    def test_detached_gpu_stays_offline_whatever_heartbeats_say(self) -> None:
        gpu = new_gpu()
        assert gpu.detach(NOW) and gpu.status == "offline"
        assert not gpu.apply_health_report(False, NOW) and not gpu.apply_health_report(True, NOW)
        assert gpu.status == "offline"

    def test_draining_is_left_alone_by_health_reports(self) -> None:
        gpu = new_gpu(status="draining")
        assert not gpu.apply_health_report(False, NOW) and gpu.status == "draining"


class TestNoAllocation:
    def test_fleet_has_no_allocation_state(self) -> None:
        # The scheduler alone owns allocation: fleet's GPU has no holder, and no status says "allocated".
        gpu = new_gpu()
        assert not {"in_use", "current_job_id", "memory_allocated_mb"} & set(vars(gpu))
        assert "allocated" not in GPU_STATUSES


class TestNodeCapacity:
    def test_capacity_and_labels_travel_with_every_gpu_event(self) -> None:
        reg = registration(
            cpu_cores=64, ram_mb=512_000, labels={"rack": "r1", "nvlink_domain": "a"}
        ).validated()
        node = Node.register(reg, NOW, None)
        gpu = Gpu.register(node, reg.gpus[0], "l4", Decimal("0.7000"), NOW, None)
        (registered,) = gpu.pull_events()
        snap = registered.gpu
        assert (snap.node_cpu_cores, snap.node_ram_mb, snap.node_labels) == (
            64,
            512_000,
            {"nvlink_domain": "a", "rack": "r1"},
        )
        gpu.apply_health_report(True, NOW)
        (changed,) = gpu.pull_events()
        assert (
            changed.gpu.node_labels == {"nvlink_domain": "a", "rack": "r1"}
            and changed.gpu.node_cpu_cores == 64
        )

    def test_a_changed_capacity_is_announced_an_unchanged_one_is_not(self) -> None:
        gpu = new_gpu()
        assert gpu.node_cpu_cores == 0  # an older agent reports none
        reg = registration(cpu_cores=8).validated()
        node = replace(Node.register(reg, NOW, None), id=gpu.node_id)
        Gpu.register(node, reg.gpus[0], "l4", Decimal("0.7000"), NOW, gpu)
        (event,) = gpu.pull_events()
        assert event.gpu.node_cpu_cores == 8 and event.gpu.revision == 2
        Gpu.register(node, reg.gpus[0], "l4", Decimal("0.7000"), NOW, gpu)
        assert gpu.pull_events() == []
