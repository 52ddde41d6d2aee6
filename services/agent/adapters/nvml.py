"""Real GPUs through NVML (``pynvml`` from the ``nvidia-ml-py`` package).

The module is a constructor parameter so tests can pass a fake one; production passes ``pynvml``.
Older bindings return ``bytes`` for names, UUIDs and the driver version, newer ones ``str``: both work.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

from ..domain.model import GpuDevice, GpuReading
from ..service_layer.ports import GpuBackendError

MIB = 1024 * 1024


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)


class NvmlBackend:
    name = "nvml"
    real = True

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        # Imported lazily: the simulated backend must not need the library.
        self._nvml: Any = nvml if nvml is not None else importlib.import_module("pynvml")
        self._handles: list[Any] = []
        self._initialised = False
        # NVML calls run in worker threads (asyncio.to_thread); keep them one at a time.
        self._lock = threading.Lock()

    def discover(self) -> tuple[str, list[GpuDevice]]:
        nv = self._nvml
        with self._lock:
            try:
                nv.nvmlInit()
                self._initialised = True
                driver = _text(nv.nvmlSystemGetDriverVersion())
                count = nv.nvmlDeviceGetCount()
                self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
                devices = [
                    GpuDevice(
                        index=i,
                        uuid=_text(nv.nvmlDeviceGetUUID(h)),
                        model=_text(nv.nvmlDeviceGetName(h)),
                        memory_total_mb=int(nv.nvmlDeviceGetMemoryInfo(h).total // MIB),
                    )
                    for i, h in enumerate(self._handles)
                ]
            except nv.NVMLError as exc:
                self._shutdown()
                raise GpuBackendError(
                    f"NVML could not be initialised ({exc}); is the NVIDIA driver installed and a GPU visible? "
                    "Set GPUFLEET_AGENT_GPU_BACKEND=simulated to run without GPUs."
                ) from exc
        if not devices:
            self.close()
            raise GpuBackendError(
                "NVML found no GPU on this host. Set GPUFLEET_AGENT_GPU_BACKEND=simulated to run without GPUs."
            )
        return driver, devices

    def sample(self, busy: frozenset[int]) -> list[GpuReading]:
        # ``busy`` is what the agent believes; NVML measures what really happens.
        with self._lock:
            return [self._read(i, h) for i, h in enumerate(self._handles)]

    def _read(self, index: int, handle: Any) -> GpuReading:
        nv = self._nvml
        try:
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
            utilization = nv.nvmlDeviceGetUtilizationRates(handle)
        except nv.NVMLError as exc:
            return GpuReading(
                index=index, utilization=0.0, memory_used_mb=0, memory_total_mb=0, error=str(exc)
            )
        return GpuReading(
            index=index,
            utilization=float(utilization.gpu),
            memory_used_mb=int(memory.used // MIB),
            memory_total_mb=int(memory.total // MIB),
            power_w=self._optional(lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0),  # milliwatts
            temperature_c=self._optional(
                lambda: float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
            ),
        )

    def _optional(self, read: Any) -> float | None:
        """Power and temperature are not supported on every board (NVMLError_NotSupported)."""
        try:
            return float(read())
        except self._nvml.NVMLError:
            return None

    def close(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            self._handles = []
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
