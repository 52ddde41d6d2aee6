"""Credentials verified ahead of their next use, within a revocation bound.

A service that asks another who a credential belongs to (identity for API keys, fleet for node
credentials) may trust an answer for at most ``ttl`` seconds (a second: the revocation bound). Asked per
call, every call made after an entry lapsed waits for a round trip: on a quiet system that is almost
every call. :class:`VerifiedAhead` keeps the credentials in use verified instead: a background task asks
for all of them again every ``refresh_s`` (under ``ttl``) in one batch, and each answer is trusted for
``ttl`` from the moment its batch was *sent*, so a call finds its credential verified less than ``ttl``
ago and pays no round trip, and a revoked credential still stops working within ``ttl`` (its next batch
answers "not valid" and the entry is dropped at once).

A credential stays verified ahead while it is used: ``keep_s`` after its last use it is dropped, and its
next use asks again. Each credential of a batch carries whether it was used since its last verification
(identity records a key's last use from that). A peer that does not serve the batch call (an older
version) is remembered: from then on every credential is asked per call, as before (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("gpufleet.grpc")

T = TypeVar("T")

TASK_NAME = "verify-ahead"  # the background task's name (tests stop leftovers by it)

# One batch: (credential, used since its last verification) pairs in, one answer per credential out
# (None: not valid). None instead of a list: the peer does not serve the batch call.
VerifyMany = Callable[[list[tuple[str, bool]]], Awaitable[Sequence[T | None] | None]]


@dataclass
class _InUse:
    credential: str
    last_used: float
    used_since_verified: bool


class VerifiedAhead(Generic[T]):
    """Answers by credential digest, each trusted until ``asked + ttl``; see the module docstring."""

    def __init__(
        self,
        verify_many: VerifyMany[T],
        *,
        ttl: float,
        refresh_s: float,
        keep_s: float,
        max_entries: int,
        max_batch: int,
        what: str,
    ) -> None:
        self._verify_many = verify_many
        self._ttl, self._refresh_s, self._keep_s = ttl, refresh_s, keep_s
        self._max_entries, self._max_batch, self._what = max_entries, max_batch, what
        # Off when a refresh would come after the entry it renews expired.
        self.ahead = 0 < refresh_s < ttl
        self._cache: dict[bytes, tuple[float, T]] = {}
        self._in_use: dict[bytes, _InUse] = {}
        self._refresher: asyncio.Task[None] | None = None

    def get(self, digest: bytes, credential: str, now: float) -> T | None:
        """The answer for ``digest`` if still trusted at ``now`` (and the credential counted as used)."""
        hit = self._cache.get(digest)
        if hit is None or hit[0] <= now:
            return None
        if digest in self._in_use:
            self._used(digest, credential, now, verified=False)
        return hit[1]

    def put(self, digest: bytes, credential: str, value: T, asked_at: float, *, ahead: bool = True) -> None:
        """A valid answer asked at ``asked_at`` (per call): trusted until ``asked_at + ttl``, and from
        then on verified ahead while in use (``ahead=False``: only cached)."""
        if len(self._cache) > self._max_entries:
            self._cache.clear()
        self._cache[digest] = (asked_at + self._ttl, value)
        if ahead:
            self._used(digest, credential, asked_at, verified=True)

    def forget(self, digest: bytes) -> None:
        self._cache.pop(digest, None)
        self._in_use.pop(digest, None)

    def _used(self, digest: bytes, credential: str, now: float, *, verified: bool) -> None:
        if not self.ahead:
            return
        entry = self._in_use.get(digest)
        if entry is not None:
            entry.last_used = now
            entry.used_since_verified = entry.used_since_verified or not verified
        elif len(self._in_use) < self._max_entries:  # past that, the rest are asked per call
            self._in_use[digest] = _InUse(credential, now, used_since_verified=not verified)
        else:
            return
        if self._refresher is None or self._refresher.done():
            # A context of its own: not the trace of the request that first used the credential.
            self._refresher = asyncio.get_running_loop().create_task(
                self._keep_verified(), name=TASK_NAME, context=contextvars.Context()
            )

    async def _keep_verified(self) -> None:
        """Verify every credential in use again, every ``refresh_s``, until none is left in use."""
        began = time.monotonic()
        while self._in_use:
            await asyncio.sleep(max(0.0, self._refresh_s - (time.monotonic() - began)))
            began = now = time.monotonic()
            for digest in [d for d, e in self._in_use.items() if now - e.last_used > self._keep_s]:
                del self._in_use[digest]
            digests = list(self._in_use)
            for i in range(0, len(digests), self._max_batch):
                if not await self._verify(digests[i : i + self._max_batch]):
                    return

    async def _verify(self, digests: list[bytes]) -> bool:
        """One batch; False: the peer does not serve it (stop verifying ahead)."""
        asked = time.monotonic()  # an answer is trusted from when it was asked, not from when it came
        entries = [self._in_use[d] for d in digests]
        flags = [e.used_since_verified for e in entries]
        for e in entries:
            e.used_since_verified = False  # a use from now on is reported in the next batch
        try:
            answers = await self._verify_many(
                [(e.credential, f) for e, f in zip(entries, flags, strict=True)]
            )
        except Exception as exc:  # the peer unreachable: entries run out on their own, calls then ask
            for e, f in zip(entries, flags, strict=True):
                e.used_since_verified = e.used_since_verified or f
            log.debug(f"re-verifying {self._what} failed", extra={"error": repr(exc)})
            return True
        if answers is None:
            log.warning(f"the batch call is not served: {self._what} are verified per call")
            self.ahead = False
            self._in_use.clear()
            return False
        for digest, answer in zip(digests, answers, strict=False):
            if answer is None:
                self.forget(digest)
            elif digest in self._in_use:  # not dropped while the batch was out
                self._cache[digest] = (asked + self._ttl, answer)
        return True

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
