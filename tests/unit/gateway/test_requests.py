"""Request bodies are strict: exact JSON types, known fields, sane bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.gateway.entrypoints.requests import ApiKeyCreate, JobCreate, WebhookCreate


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
        {"command": "x" * 10_001},
        {"command": "a\x00b"},
        {"command": "echo", "webhook_url": "javascript:alert(1)"},
        {"command": "echo", "gpu_type": ""},
        {"command": "echo", "extra": 1},
        {"command": "echo", "name": "n" * 201},
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
