"""Free TCP ports on loopback for the embedded stack and the test harness.

``bind(("127.0.0.1", 0))`` and close hands out a port from the kernel's ephemeral range, and the kernel
hands the same port to the next ``bind(0)`` or outgoing connection whenever it likes: a harness that
picks a port for a gRPC listener this way and then starts a server whose operations endpoint binds
port 0 can find its own HTTP server on the port it meant for gRPC (seen in CI). :func:`free_port`
therefore picks below the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768–60999 by
default), where the kernel never allocates on its own, checks that nothing holds the port now, and never
hands the same port out twice in one process. Where the range leaves no room below it, it falls back to
the kernel's choice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 15_000  # above the registered ports most hosts run something on
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to now, outside the kernel's ephemeral range when it
    can be, and not one this process was handed before."""
    highest = _ephemeral_start() - 1
    if highest - LOWEST >= 1_000:
        for _ in range(500):
            port = _random.randint(LOWEST, highest)
            if port not in _handed_out and _free(port):
                _handed_out.add(port)
                return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
