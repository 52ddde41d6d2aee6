from __future__ import annotations

from services.agent.adapters.simulated import SimulatedBackend, simulated_uuid


def backend(host: str = "node-a", count: int = 2) -> SimulatedBackend:
    return SimulatedBackend(count, "NVIDIA A100-SXM4-80GB", 81920, host)


def test_uuids_are_stable_per_host_and_index():
    _, first = backend().discover()
    _, again = backend().discover()
    _, other = backend("node-b").discover()
    assert [d.uuid for d in first] == [d.uuid for d in again]
    assert {d.uuid for d in first}.isdisjoint({d.uuid for d in other})
    assert len({d.uuid for d in first}) == 2
    assert all(d.uuid.startswith("GPU-sim-") for d in first)
    assert first[1].uuid == simulated_uuid("node-a", 1)


def test_devices_report_the_configured_model_and_memory():
    driver, devices = SimulatedBackend(3, "Sim X", 1000, "h").discover()
    assert driver == "simulated"
    assert [(d.index, d.model, d.memory_total_mb) for d in devices] == [
        (0, "Sim X", 1000),
        (1, "Sim X", 1000),
        (2, "Sim X", 1000),
    ]


def test_readings_are_deterministic_for_the_same_history():
    one, two = backend(), backend()
    history = [frozenset(), frozenset({0}), frozenset({0, 1}), frozenset()]
    assert [one.sample(b) for b in history] == [two.sample(b) for b in history]


def test_utilization_and_memory_rise_while_a_job_holds_the_gpu_and_fall_after():
    sim = backend()
    idle = sim.sample(frozenset())
    busy = [sim.sample(frozenset({1})) for _ in range(6)][-1]
    assert busy[1].utilization > 80 and idle[1].utilization < 5
    assert busy[1].memory_used_mb > 10 * idle[1].memory_used_mb
    assert busy[0].utilization < 5  # the other GPU stays idle
    assert busy[1].power_w > idle[1].power_w and busy[1].temperature_c > idle[1].temperature_c
    released = [sim.sample(frozenset()) for _ in range(8)][-1]
    assert released[1].utilization < 10 and released[1].memory_used_mb < busy[1].memory_used_mb


def test_readings_stay_within_physical_bounds():
    sim = backend(count=1)
    for i in range(50):
        (r,) = sim.sample(frozenset({0}) if i % 7 < 4 else frozenset())
        assert 0 <= r.utilization <= 100
        assert 0 <= r.memory_used_mb <= r.memory_total_mb
        assert 30 < r.temperature_c < 90 and 40 < r.power_w <= 400
