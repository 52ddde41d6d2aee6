"""Request bodies are strict: exact JSON types, known fields, sane bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.gateway.entrypoints.requests import ApiKeyCreate, JobCreate, JobPriorityUpdate, WebhookCreate
from shared.contracts import limits


def test_job_defaults():
    job = JobCreate.model_validate({"command": "echo"})
    assert (job.gpu_count, job.gpu_memory_mb, job.priority, job.gpu_type, job.webhook_url, job.name) == (
        1,
        0,
        50,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"command": "echo", "gpu_count": "2"},
        {"command": "echo", "gpu_count": 0},
        {"command": "echo", "gpu_count": 16.0},
        {"command": "echo", "priority": -1},
        {"command": "echo", "gpu_memory_mb": -1},
        {"command": "x" * (limits.MAX_COMMAND + 1)},
        {"command": "echo", "gpu_count": limits.MAX_GPUS + 1},
        {"command": "echo", "priority": limits.MAX_PRIORITY + 1},
        {"command": "echo", "gpu_memory_mb": limits.MAX_GPU_MEMORY_MB + 1},
        {"command": "echo", "gpu_type": "t" * (limits.MAX_GPU_TYPE + 1)},
        {"command": "echo", "webhook_url": "https://user:secret@example.com/hook"},
        {"command": "echo", "webhook_url": "https://example.com:99999/"},
        {"command": "echo", "webhook_url": "https://example.com/" + "p" * limits.MAX_URL},
        {"command": "a\x00b"},
        {"command": "echo", "webhook_url": "javascript:alert(1)"},
        {"command": "echo", "gpu_type": ""},
        {"command": "echo", "extra": 1},
        {"command": "echo", "name": "n" * (limits.MAX_JOB_NAME + 1)},
        {"command": "echo", "nodes": 0},
        {"command": "echo", "nodes": limits.MAX_NODES + 1},
        {"command": "echo", "cpu_cores": limits.MAX_CPU_CORES + 1},
        {"command": "echo", "ram_mb": -1},
        {"command": "echo", "ram_mb": limits.MAX_RAM_MB + 1},
        {"command": "echo", "time_limit_seconds": 0},
        {"command": "echo", "time_limit_seconds": limits.MAX_TIME_LIMIT_SECONDS + 1},
        {"command": "echo", "hold": "true"},
        {"command": "echo", "no_requeue": 0},
    ],
)
def test_job_rejects(body):
    with pytest.raises(ValidationError):
        JobCreate.model_validate(body)


def test_webhook_url_is_forwarded_as_given():
    # pydantic's Url would add a trailing slash; the service must see what the user wrote.
    assert JobCreate.model_validate({"command": "x", "webhook_url": "https://example.com"}).webhook_url == (
        "https://example.com"
    )
    assert (
        WebhookCreate.model_validate({"url": "http://h.example:8080/p?q=1"}).url
        == "http://h.example:8080/p?q=1"
    )


def test_webhook_events_must_be_a_list_of_strings():
    with pytest.raises(ValidationError):
        WebhookCreate.model_validate({"url": "https://example.com", "events": [1]})


def test_api_key_expiry_bounds():
    assert ApiKeyCreate.model_validate({"name": "k"}).expires_in_seconds is None
    with pytest.raises(ValidationError):
        ApiKeyCreate.model_validate({"name": "k", "expires_in_seconds": 0})


def test_job_bounds_are_the_shared_limits():
    at_most = JobCreate.model_validate(
        {
            "command": "x" * limits.MAX_COMMAND,
            "gpu_count": limits.MAX_GPUS,
            "gpu_memory_mb": limits.MAX_GPU_MEMORY_MB,
            "priority": limits.MIN_PRIORITY,
            "name": "n" * limits.MAX_JOB_NAME,
        }
    )
    assert at_most.priority == 0 and at_most.gpu_count == limits.MAX_GPUS
    assert JobCreate.model_validate({"command": "x"}).priority == limits.DEFAULT_PRIORITY


@pytest.mark.parametrize("event", limits.WEBHOOK_EVENT_NAMES)
def test_every_webhook_event_name_is_accepted(event):
    assert WebhookCreate.model_validate({"url": "https://example.com", "events": [event]}).events == [event]


@pytest.mark.parametrize("event", ["gpufleet.job.succeeded", "job.*", "JOB.SUCCEEDED", ""])
def test_other_event_names_are_refused(event):
    with pytest.raises(ValidationError):
        WebhookCreate.model_validate({"url": "https://example.com", "events": [event]})


def test_key_scopes_are_the_shared_enumeration():
    assert ApiKeyCreate.model_validate({"name": "k", "scopes": list(limits.KEY_SCOPES)}).scopes == list(
        limits.KEY_SCOPES
    )
    with pytest.raises(ValidationError):
        ApiKeyCreate.model_validate({"name": "k", "scopes": ["superuser"]})
    with pytest.raises(ValidationError):
        ApiKeyCreate.model_validate({"name": "k", "expires_in_seconds": limits.MAX_KEY_LIFETIME_SECONDS + 1})


def test_engine_fields_default_to_a_plain_single_node_job():
    job = JobCreate.model_validate({"command": "echo"})
    assert (job.nodes, job.cpu_cores, job.ram_mb, job.time_limit_seconds, job.hold, job.no_requeue) == (
        1,
        0,
        0,
        None,
        False,
        False,
    )


def test_engine_fields_at_their_limits_are_accepted():
    job = JobCreate.model_validate(
        {
            "command": "echo",
            "nodes": limits.MAX_NODES,
            "cpu_cores": limits.MAX_CPU_CORES,
            "ram_mb": limits.MAX_RAM_MB,
            "time_limit_seconds": limits.MAX_TIME_LIMIT_SECONDS,
        }
    )
    assert job.nodes == limits.MAX_NODES and job.time_limit_seconds == limits.MAX_TIME_LIMIT_SECONDS


@pytest.mark.parametrize("priority", [limits.MIN_PRIORITY, limits.MAX_PRIORITY])
def test_priority_update_bounds(priority):
    assert JobPriorityUpdate.model_validate({"priority": priority}).priority == priority


@pytest.mark.parametrize(
    "body",
    [{}, {"priority": limits.MAX_PRIORITY + 1}, {"priority": -1}, {"priority": "5"}, {"priority": 5, "x": 1}],
)
def test_priority_update_rejects(body):
    with pytest.raises(ValidationError):
        JobPriorityUpdate.model_validate(body)
