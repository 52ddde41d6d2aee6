"""What must hold after a chaos run, checked from the outside: REST snapshots and the public topics.

Pure functions over plain data (no I/O), so the checks themselves are unit-tested. Every check returns
violations instead of raising, so one run reports everything it found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.contracts import costs, jobs

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
LIVE = frozenset({"scheduled", "running"})
RUN_EVENTS = frozenset({jobs.JOB_SCHEDULED, jobs.JOB_STARTED})
# The statuses a job's history may pass through, in order (any may be skipped, none repeated).
ORDER = {"queued": 0, "scheduled": 1, "running": 2, "succeeded": 3, "failed": 3, "cancelled": 3}


@dataclass(frozen=True)
class Event:
    """One record of a public topic: CloudEvents id, type and time, the key (job id) and the payload."""

    id: str
    type: str
    time: datetime
    job_id: str
    data: dict


@dataclass(frozen=True)
class Violation:
    kind: str
    job_id: str
    detail: str


def dedup(events: Iterable[Event]) -> list[Event]:
    """At-least-once delivery (and the outbox replay after a broker loss): one event per ``ce_id``."""
    seen: dict[str, Event] = {}
    for event in events:
        seen.setdefault(event.id, event)
    return sorted(seen.values(), key=lambda e: (e.time, e.id))


def check_submissions(submitted: Mapping[str, str], jobs_by_id: Mapping[str, dict]) -> list[Violation]:
    """``submitted``: idempotency key -> job id the gateway answered. None lost, none created twice."""
    out = [
        Violation("lost", job_id, f"key {key} answered, job not found")
        for key, job_id in submitted.items()
        if job_id not in jobs_by_id
    ]
    ids = Counter(submitted.values())
    out += [
        Violation("merged", job_id, f"{n} keys answered with one job") for job_id, n in ids.items() if n > 1
    ]
    out += [
        Violation("duplicate", job_id, "a job nobody submitted (a retry created a second one)")
        for job_id in jobs_by_id
        if job_id not in ids
    ]
    out += [
        Violation("not_final", j["id"], f"still {j['status']}")
        for j in jobs_by_id.values()
        if j["status"] not in TERMINAL
    ]
    return out


def check_history(job: dict) -> list[Violation]:
    """One attempt: the history walks queued -> scheduled -> running -> one terminal state, never back."""
    statuses = [h["status"] for h in job.get("history") or []]
    out: list[Violation] = []
    ranks = [ORDER[s] for s in statuses]
    if ranks != sorted(ranks) or len(set(statuses)) != len(statuses):
        out.append(Violation("two_attempts", job["id"], f"history {statuses}"))
    terminal = [s for s in statuses if s in TERMINAL]
    if len(terminal) > 1:
        out.append(Violation("finished_twice", job["id"], f"history {statuses}"))
    if terminal and statuses[-1] not in TERMINAL:
        out.append(Violation("rerun_after_finish", job["id"], f"history {statuses}"))
    if job["status"] in TERMINAL and statuses and statuses[-1] != job["status"]:
        out.append(Violation("history_disagrees", job["id"], f"status {job['status']}, history {statuses}"))
    return out


def _gpu_set(event: Event) -> frozenset[str]:
    return frozenset(str(g["gpu_id"]) for g in event.data.get("job", {}).get("allocation") or [])


def check_job_events(job_id: str, events: list[Event], final_status: str) -> list[Violation]:
    """``events``: this job's deduplicated job-topic events, in time order."""
    out: list[Violation] = []
    types = Counter(e.type for e in events)
    if types[jobs.JOB_SCHEDULED] > 1:
        out.append(Violation("two_attempts", job_id, f"{types[jobs.JOB_SCHEDULED]} scheduled events"))
    gpu_sets = {s for s in map(_gpu_set, events) if s}
    if len(gpu_sets) > 1:
        out.append(Violation("two_allocations", job_id, f"GPU sets {sorted(map(sorted, gpu_sets))}"))
    finishes = [e for e in events if e.type in jobs.TERMINAL_EVENTS]
    if len(finishes) > 1:
        out.append(Violation("finished_twice", job_id, f"terminal events {[e.type for e in finishes]}"))
    if finishes:
        first = min(e.time for e in finishes)
        late = [e.type for e in events if e.type in RUN_EVENTS and e.time > first]
        if late:
            out.append(Violation("rerun_after_finish", job_id, f"{late} after the recorded finish"))
    if final_status in TERMINAL and not finishes:
        out.append(Violation("event_missing", job_id, f"{final_status}, but no terminal event on the topic"))
    return out


def check_gpu_bookings(jobs_by_id: Mapping[str, dict]) -> list[Violation]:
    """No GPU held by two jobs at once: [scheduled_at, finished_at) of jobs sharing a GPU never overlap."""
    held: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for job in jobs_by_id.values():
        if job.get("scheduled_at") and job.get("gpu_ids"):
            start = _dt(job["scheduled_at"])
            end = (
                _dt(job["finished_at"])
                if job.get("finished_at")
                else datetime.max.replace(tzinfo=start.tzinfo)
            )
            for gpu in job["gpu_ids"]:
                held[gpu].append((start, end, job["id"]))
    out: list[Violation] = []
    for gpu, spans in held.items():
        spans.sort()
        holder_end, holder = spans[0][1], spans[0][2]
        for start, end, job_id in spans[1:]:
            if start < holder_end:
                out.append(Violation("gpu_double_booked", job_id, f"GPU {gpu} still held by job {holder}"))
            if end > holder_end:
                holder_end, holder = end, job_id
    return out


def check_costs(
    jobs_by_id: Mapping[str, dict], cost_events: list[Event], rest_costs: Mapping[str, list[dict]]
) -> list[Violation]:
    """Each job that held GPUs is billed exactly once (one cost event after dedup on ``ce_id``, one REST
    cost) and the REST cost equals the event; a job that never held a GPU is not billed.

    ``rest_costs``: job id -> every cost the REST listing returned for it (more than one is a violation).
    """
    by_job: dict[str, list[Event]] = defaultdict(list)
    for event in cost_events:
        if event.type == costs.COST_RECORDED:
            by_job[event.job_id].append(event)
    out: list[Violation] = []
    for job_id, job in jobs_by_id.items():
        billable = job["status"] in TERMINAL and bool(job.get("scheduled_at")) and bool(job.get("gpu_ids"))
        events, rest = by_job.get(job_id, []), rest_costs.get(job_id, [])
        if not billable:
            if events or rest:
                out.append(
                    Violation("billed_without_gpus", job_id, f"{len(events)} events, {len(rest)} REST")
                )
            continue
        if len(events) != 1:
            kind = "cost_missing" if not events else "billed_twice"
            out.append(Violation(kind, job_id, f"{len(events)} cost events (distinct ce_id)"))
        if len(rest) != 1:
            kind = "cost_missing" if not rest else "billed_twice"
            out.append(Violation(kind, job_id, f"{len(rest)} REST costs"))
        if len(events) == 1 and len(rest) == 1:
            on_topic, over_rest = (
                Decimal(str(events[0].data["total_cost"])),
                Decimal(str(rest[0]["total_cost"])),
            )
            if on_topic != over_rest:
                out.append(Violation("cost_mismatch", job_id, f"event {on_topic} != REST {over_rest}"))
    return out


def check_all(
    submitted: Mapping[str, str],
    jobs_by_id: Mapping[str, dict],
    job_events: Iterable[Event],
    cost_events: Iterable[Event],
    rest_costs: Mapping[str, list[dict]],
) -> list[Violation]:
    out = check_submissions(submitted, jobs_by_id)
    per_job: dict[str, list[Event]] = defaultdict(list)
    for event in dedup(job_events):
        per_job[event.job_id].append(event)
    for job_id, job in jobs_by_id.items():
        out += check_history(job)
        out += check_job_events(job_id, per_job.get(job_id, []), job["status"])
    out += check_gpu_bookings(jobs_by_id)
    out += check_costs(jobs_by_id, dedup(cost_events), rest_costs)
    return out


def _dt(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
