"""The chaos soak's checks (tests.chaos.invariants) catch what they claim to, and pass a clean run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.contracts import costs, jobs
from tests.chaos import invariants
from tests.chaos.invariants import Event

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def job(job_id: str, gpu: str = "g1", start: float = 1, end: float = 3, status: str = "succeeded") -> dict:
    history = ["queued", "scheduled", "running", status]
    return {
        "id": job_id,
        "status": status,
        "scheduled_at": at(start),
        "finished_at": at(end),
        "gpu_ids": [gpu],
        "history": [{"status": s, "at": at(start + i * 0.1)} for i, s in enumerate(history)],
    }


def job_events(job_id: str, gpu: str = "g1", start: float = 1, end: float = 3) -> list[Event]:
    alloc = {"job": {"allocation": [{"gpu_id": gpu}]}}
    return [
        Event(f"{job_id}-s", jobs.JOB_SUBMITTED, T0, job_id, {"job": {"allocation": []}}),
        Event(f"{job_id}-sc", jobs.JOB_SCHEDULED, T0 + timedelta(seconds=start), job_id, alloc),
        Event(f"{job_id}-st", jobs.JOB_STARTED, T0 + timedelta(seconds=start + 0.1), job_id, alloc),
        Event(f"{job_id}-ok", jobs.JOB_SUCCEEDED, T0 + timedelta(seconds=end), job_id, alloc),
    ]


def cost_event(job_id: str, total: str = "0.01", ce_id: str | None = None) -> Event:
    return Event(ce_id or f"{job_id}-c", costs.COST_RECORDED, T0, job_id, {"total_cost": total})


def clean() -> tuple[dict, dict, list[Event], list[Event], dict]:
    jobs_by_id = {"a": job("a", start=1, end=3), "b": job("b", start=3, end=5)}  # same GPU, one after another
    events = job_events("a", start=1, end=3) + job_events("b", start=3, end=5)
    cost_events = [cost_event("a"), cost_event("b")]
    rest = {"a": [{"total_cost": "0.0100"}], "b": [{"total_cost": "0.01"}]}
    return {"k1": "a", "k2": "b"}, jobs_by_id, events, cost_events, rest


def kinds(violations) -> list[str]:
    return sorted(v.kind for v in violations)


def test_a_clean_run_passes_even_with_every_event_delivered_twice():
    submitted, jobs_by_id, events, cost_events, rest = clean()
    assert invariants.check_all(submitted, jobs_by_id, events * 2, cost_events * 2, rest) == []


def test_lost_duplicate_and_unfinished_jobs():
    submitted, jobs_by_id, *_ = clean()
    submitted["k3"] = "gone"
    jobs_by_id["extra"] = {**job("extra", gpu="g9"), "status": "running"}
    found = kinds(invariants.check_submissions(submitted, jobs_by_id))
    assert found == ["duplicate", "lost", "not_final"]


def test_two_live_attempts_in_the_history():
    j = job("a")
    j["history"] = [{"status": s} for s in ("queued", "scheduled", "running", "scheduled", "succeeded")]
    assert "two_attempts" in kinds(invariants.check_history(j))


def test_a_rerun_after_the_finish_in_the_history():
    j = job("a")
    j["history"] = [{"status": s} for s in ("queued", "scheduled", "running", "succeeded", "running")]
    assert {"two_attempts", "rerun_after_finish"} <= set(kinds(invariants.check_history(j)))


def test_a_second_gpu_set_and_a_second_schedule_on_the_topic():
    events = job_events("a")
    second = Event(
        "a-sc2",
        jobs.JOB_SCHEDULED,
        T0 + timedelta(seconds=2),
        "a",
        {"job": {"allocation": [{"gpu_id": "g2"}]}},
    )
    found = kinds(invariants.check_job_events("a", invariants.dedup([*events, second]), "succeeded"))
    assert found == ["two_allocations", "two_attempts"]


def test_a_start_after_the_recorded_finish_on_the_topic():
    events = job_events("a")
    late = Event(
        "a-st2",
        jobs.JOB_STARTED,
        T0 + timedelta(seconds=10),
        "a",
        {"job": {"allocation": [{"gpu_id": "g1"}]}},
    )
    found = kinds(invariants.check_job_events("a", invariants.dedup([*events, late]), "succeeded"))
    assert found == ["rerun_after_finish"]


def test_a_final_job_without_its_terminal_event():
    events = job_events("a")[:-1]
    assert kinds(invariants.check_job_events("a", events, "succeeded")) == ["event_missing"]


def test_one_gpu_held_by_two_jobs_at_once_even_behind_a_short_one():
    jobs_by_id = {
        "long": job("long", start=0, end=10),
        "short": job("short", start=1, end=2),
        "c": job("c", start=5, end=6),
    }
    found = invariants.check_gpu_bookings(jobs_by_id)
    assert sorted(v.job_id for v in found) == ["c", "short"]


def test_billing_missing_twice_mismatched_and_without_gpus():
    jobs_by_id = {
        "missing": job("missing", gpu="g1"),
        "twice": job("twice", gpu="g2"),
        "wrong": job("wrong", gpu="g3"),
        "queued-cancel": {"id": "queued-cancel", "status": "cancelled", "scheduled_at": None, "gpu_ids": []},
    }
    cost_events = [
        cost_event("twice", ce_id="c1"),
        cost_event("twice", ce_id="c2"),  # a second ce_id: a second billing, not a redelivery
        cost_event("wrong", total="0.02"),
        cost_event("queued-cancel"),
    ]
    rest = {"twice": [{"total_cost": "0.01"}], "wrong": [{"total_cost": "0.01"}]}
    found = kinds(invariants.check_costs(jobs_by_id, invariants.dedup(cost_events), rest))
    assert found == ["billed_twice", "billed_without_gpus", "cost_mismatch", "cost_missing", "cost_missing"]
