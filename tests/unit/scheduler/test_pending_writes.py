"""Which "why pending" answers the leader rewrites after a cycle (each rewrite is a job event): a
changed reason or a moved estimate, but not a job flipping between the two ways of waiting for room."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from services.scheduler.service_layer.scheduling import Scheduler

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ROOM_WENT = "the room this job needs went to other jobs of your organization"


def changes(pending: dict, outcomes: list[tuple[str, str, list[uuid.UUID], datetime | None]]) -> set:
    me = SimpleNamespace(deps=SimpleNamespace(options=SimpleNamespace(max_pending_writes=1000)))
    result = SimpleNamespace(
        outcomes=[
            SimpleNamespace(
                reason=SimpleNamespace(code=c, message=m), keys=[(0, 0, j) for j in jobs], estimated_start=e
            )
            for c, m, jobs, e in outcomes
        ]
    )
    return set(Scheduler._pending_changes(me, SimpleNamespace(pending=pending), result))  # type: ignore[arg-type]


def test_a_job_flipping_between_the_ways_of_waiting_for_room_is_not_rewritten() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    pending = {a: ("no_capacity", "no node has 1 free GPU", None), b: ("behind_own_jobs", ROOM_WENT, None)}
    assert (
        changes(pending, [("behind_own_jobs", ROOM_WENT, [a], None), ("no_capacity", "x", [b], None)])
        == set()
    )


def test_a_new_reason_a_new_message_or_a_moved_estimate_is_rewritten() -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    pending = {
        a: ("no_capacity", "no node has 1 free GPU", None),
        b: ("no_capacity", "no node has 1 free GPU", None),
        c: ("no_capacity", "no node has 1 free GPU", T0),
    }
    outcomes = [
        ("quota", "your organization's quota for a100-80gb: 8/8 in use", [a], None),  # another reason
        ("no_capacity", "no node has 2 free GPUs", [b], None),  # same code, another message
        ("no_capacity", "no node has 1 free GPU", [c], T0 + timedelta(minutes=5)),  # estimate moved
        ("behind_own_jobs", ROOM_WENT, [d], None),  # first answer for this job
    ]
    assert changes(pending, outcomes) == {a, b, c, d}
    assert (
        changes(pending, [("no_capacity", "no node has 1 free GPU", [c], T0 + timedelta(seconds=5))]) == set()
    )
