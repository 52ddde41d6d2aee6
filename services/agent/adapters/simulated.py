"""Simulated GPUs for development and tests on machines without NVIDIA hardware.

Nothing here touches a GPU: the devices are invented, jobs run on the CPU, and the readings only
follow what the agent tells the backend (utilisation and memory climb while a job holds a GPU and fall
back when it is released). Everything is deterministic for a given hostname, so the same simulated
node registers the same GPU UUIDs after every restart and fleet recognises it.
"""

from __future__ import annotations

import hashlib
import random
import uuid

from ..domain.model import GpuDevice, GpuReading

IDLE_POWER_W, MAX_POWER_W = 55.0, 400.0
IDLE_TEMP_C, MAX_TEMP_C = 31.0, 78.0
IDLE_MEMORY_MB = 512
BUSY_MEMORY_SHARE = 0.7  # a busy simulated GPU settles at about 70 % of its memory
APPROACH = 0.5  # fraction of the remaining distance covered per sample: a visible ramp, not a jump


def simulated_uuid(hostname: str, index: int) -> str:
    digest = hashlib.sha256(f"{hostname}/{index}".encode()).digest()
    return "GPU-sim-" + str(uuid.UUID(bytes=digest[:16]))


class SimulatedBackend:
    name = "simulated"
    real = False

    def __init__(self, count: int, model: str, memory_mb: int, hostname: str) -> None:
        if count < 1:
            raise ValueError("a simulated node needs at least one GPU")
        self.count, self.model, self.memory_mb, self.hostname = count, model, memory_mb, hostname
        self._utilization = [0.0] * count
        self._memory = [float(min(IDLE_MEMORY_MB, memory_mb))] * count
        # Jitter from a seeded generator: lifelike noise, same sequence for the same node every run.
        self._rng = random.Random(hashlib.sha256(hostname.encode()).digest())

    def discover(self) -> tuple[str, list[GpuDevice]]:
        devices = [
            GpuDevice(
                index=i,
                uuid=simulated_uuid(self.hostname, i),
                model=self.model,
                memory_total_mb=self.memory_mb,
            )
            for i in range(self.count)
        ]
        return "simulated", devices

    def sample(self, busy: frozenset[int]) -> list[GpuReading]:
        readings = []
        for i in range(self.count):
            held = i in busy
            target_util = 92.0 + self._rng.uniform(-6, 6) if held else self._rng.uniform(0, 2)
            target_mem = self.memory_mb * BUSY_MEMORY_SHARE if held else min(IDLE_MEMORY_MB, self.memory_mb)
            self._utilization[i] += (target_util - self._utilization[i]) * APPROACH
            self._memory[i] += (target_mem - self._memory[i]) * APPROACH
            util = min(max(self._utilization[i], 0.0), 100.0)
            readings.append(
                GpuReading(
                    index=i,
                    utilization=round(util, 1),
                    memory_used_mb=int(self._memory[i]),
                    memory_total_mb=self.memory_mb,
                    power_w=round(IDLE_POWER_W + (MAX_POWER_W - IDLE_POWER_W) * util / 100, 1),
                    temperature_c=round(IDLE_TEMP_C + (MAX_TEMP_C - IDLE_TEMP_C) * util / 100, 1),
                )
            )
        return readings

    def close(self) -> None:
        pass
