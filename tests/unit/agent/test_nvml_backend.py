"""NvmlBackend against a fake ``pynvml`` module (no driver needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.agent.adapters.nvml import NvmlBackend
from services.agent.service_layer.ports import GpuBackendError

MIB = 1024 * 1024


class FakeNvml:
    """The subset of pynvml the backend uses, with two GPUs. ``as_bytes``: old bindings' return type."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(
        self,
        *,
        as_bytes: bool = False,
        fail_init: bool = False,
        count: int = 2,
        power_unsupported: bool = False,
    ) -> None:
        self.as_bytes, self.fail_init, self.count = as_bytes, fail_init, count
        self.power_unsupported = power_unsupported
        self.initialised = False
        self.broken: set[int] = set()

    def _s(self, value: str):
        return value.encode() if self.as_bytes else value

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self):
        return self._s("550.54.15")

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int):
        return SimpleNamespace(i=i)

    def nvmlDeviceGetName(self, h):
        return self._s("NVIDIA H100 80GB HBM3")

    def nvmlDeviceGetUUID(self, h):
        return self._s(f"GPU-0000000{h.i}-aaaa-bbbb-cccc-dddddddddddd")

    def nvmlDeviceGetMemoryInfo(self, h):
        if h.i in self.broken:
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(total=81559 * MIB, used=(1000 + h.i) * MIB, free=0)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=40 + h.i, memory=10)

    def nvmlDeviceGetPowerUsage(self, h) -> int:
        if self.power_unsupported:
            raise self.NVMLError("Not Supported")
        return 123456  # milliwatts

    def nvmlDeviceGetTemperature(self, h, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 55 + h.i


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str-returns", "bytes-returns"])
def test_discovers_devices_whatever_the_binding_returns(as_bytes):
    nv = FakeNvml(as_bytes=as_bytes)
    driver, devices = NvmlBackend(nv).discover()
    assert driver == "550.54.15"
    assert [(d.index, d.model, d.memory_total_mb) for d in devices] == [
        (0, "NVIDIA H100 80GB HBM3", 81559),
        (1, "NVIDIA H100 80GB HBM3", 81559),
    ]
    assert devices[1].uuid == "GPU-00000001-aaaa-bbbb-cccc-dddddddddddd"


def test_sample_converts_units():
    backend = NvmlBackend(FakeNvml())
    backend.discover()
    r0, r1 = backend.sample(frozenset())
    assert (r1.utilization, r1.memory_used_mb, r1.memory_total_mb) == (41.0, 1001, 81559)
    assert r0.power_w == pytest.approx(123.456)  # mW -> W
    assert r1.temperature_c == 56.0 and r0.error is None


def test_unsupported_power_is_absent_not_an_error():
    backend = NvmlBackend(FakeNvml(power_unsupported=True))
    backend.discover()
    r0, _ = backend.sample(frozenset())
    assert r0.power_w is None and r0.error is None and r0.temperature_c == 55.0


def test_a_device_that_cannot_be_read_is_marked_with_the_error():
    nv = FakeNvml()
    backend = NvmlBackend(nv)
    backend.discover()
    nv.broken.add(1)
    r0, r1 = backend.sample(frozenset())
    assert r0.error is None and r1.error == "GPU is lost"


def test_init_failure_says_how_to_run_without_gpus():
    with pytest.raises(GpuBackendError, match="GPUFLEET_AGENT_GPU_BACKEND=simulated"):
        NvmlBackend(FakeNvml(fail_init=True)).discover()


def test_no_gpu_found_is_an_error_and_shuts_nvml_down():
    nv = FakeNvml(count=0)
    with pytest.raises(GpuBackendError, match="no GPU"):
        NvmlBackend(nv).discover()
    assert not nv.initialised


def test_close_shuts_nvml_down():
    nv = FakeNvml()
    backend = NvmlBackend(nv)
    backend.discover()
    backend.close()
    assert not nv.initialised
