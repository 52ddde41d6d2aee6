"""Public event names, a webhook's event filter and the body every target receives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.notification.domain.events import (
    EVENT_NAMES,
    event_filter,
    public_name,
    subscribes_to,
    webhook_body,
)
from shared.contracts import costs, jobs
from shared.contracts.limits import MAX_WEBHOOK_EVENTS, WEBHOOK_EVENT_NAMES
from shared.errors import InvalidArgument


def test_every_job_and_cost_topic_event_has_a_public_name_without_the_prefix() -> None:
    topic_types = [*jobs.EVENT_TYPES, *costs.EVENT_TYPES]
    assert sorted(public_name(t) for t in topic_types) == sorted(EVENT_NAMES)
    assert public_name(jobs.JOB_SUCCEEDED) == "job.succeeded"
    assert public_name(costs.COST_RECORDED) == "cost.recorded"
    assert public_name("gpufleet.gpu.registered") is None
    assert public_name("job.succeeded") is None


def test_the_names_are_the_shared_contracts() -> None:
    assert EVENT_NAMES is WEBHOOK_EVENT_NAMES


def test_filter_refuses_more_names_than_the_limit_even_if_repeated() -> None:
    assert event_filter(["job.failed"] * MAX_WEBHOOK_EVENTS) == ("job.failed",)
    with pytest.raises(InvalidArgument) as err:
        event_filter(["job.failed"] * (MAX_WEBHOOK_EVENTS + 1))
    assert err.value.field == "events"


def test_filter_keeps_known_names_once_in_canonical_order() -> None:
    assert event_filter(["job.failed", "job.submitted", "job.failed"]) == ("job.submitted", "job.failed")
    assert event_filter([]) == ()


@pytest.mark.parametrize("bad", ["job.exploded", "gpufleet.job.failed", ""])
def test_filter_refuses_unknown_names(bad: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        event_filter(["job.failed", bad])
    assert err.value.field == "events"


def test_empty_subscription_means_every_job_event_and_costs_are_asked_for_by_name() -> None:
    assert subscribes_to((), "job.started")
    assert not subscribes_to((), "cost.recorded")
    assert subscribes_to(("cost.recorded",), "cost.recorded")
    assert not subscribes_to(("cost.recorded",), "job.succeeded")
    assert subscribes_to(("job.started",), "job.started")
    assert not subscribes_to(("job.failed", "job.succeeded"), "job.started")


def test_body_has_the_event_id_type_rfc3339_timestamp_and_data() -> None:
    event_id = uuid.UUID("3f8a7c1e-0000-4000-8000-000000000001")
    body = webhook_body(
        event_id, "job.failed", datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC), {"job_id": "j", "exit_code": 2}
    )
    assert json.loads(body) == {
        "id": "3f8a7c1e-0000-4000-8000-000000000001",
        "type": "job.failed",
        "timestamp": "2025-03-01T12:00:05Z",
        "data": {"job_id": "j", "exit_code": 2},
    }
