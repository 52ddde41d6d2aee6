"""free_port: below the kernel's ephemeral range, free now, never the same twice in one process."""

from __future__ import annotations

import socket

from shared.embedded import ports


def test_ports_come_from_below_the_ephemeral_range_and_are_not_repeated():
    start = ports._ephemeral_start()
    picked = [ports.free_port() for _ in range(200)]
    assert len(set(picked)) == len(picked)
    assert all(ports.LOWEST <= p < start for p in picked)
    for p in picked[:20]:  # each one binds
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch):
    free = [
        p for p in range(ports.LOWEST, ports.LOWEST + 200) if p not in ports._handed_out and ports._free(p)
    ]
    taken, other = free[0], free[1]
    with socket.socket() as held:
        held.bind(("127.0.0.1", taken))
        held.listen()
        candidates = iter([taken, other])
        monkeypatch.setattr(ports._random, "randint", lambda lo, hi: next(candidates))
        assert ports.free_port() == other


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch):
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: ports.LOWEST + 10)
    got = {ports.free_port() for _ in range(20)}
    assert len(got) == 20
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = (int(x) for x in f.read().split())
    assert all(lo <= p <= hi for p in got)
