"""`gpufleet webhooks update | rotate-secret | redeliver` against a fake gateway."""

from __future__ import annotations

import json

import httpx

from tests.unit.cli.conftest import problem

HOOK = {
    "id": "w1",
    "url": "https://example.com/new",
    "events": [],
    "description": None,
    "status": "active",
    "is_active": True,
    "error_rate": 0.0,
    "consecutive_failures": 0,
    "last_used": None,
    "created_at": "2026-01-01T00:00:00Z",
}


def test_update_sends_only_what_was_given(gateway, cli, capsys):
    gateway.on("PATCH", "/v1/webhooks/w1", HOOK)
    assert (
        cli("webhooks", "update", "w1", "--url", "https://example.com/new", "--all-events", "--enable") == 0
    )
    assert "https://example.com/new [active] (all job events)" in capsys.readouterr().out
    assert json.loads(gateway.sent("PATCH", "/v1/webhooks/w1")[-1].content) == {
        "url": "https://example.com/new",
        "events": [],
        "status": "active",
    }
    assert cli("webhooks", "update", "w1", "--description", "", "--disable", "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == "w1"
    assert json.loads(gateway.sent("PATCH", "/v1/webhooks/w1")[-1].content) == {
        "description": None,
        "status": "disabled",
    }
    assert cli("webhooks", "update", "w1") == 64  # nothing to change
    assert cli("webhooks", "update", "w1", "--event", "job.failed", "--all-events") == 64
    assert len(gateway.sent("PATCH", "/v1/webhooks/w1")) == 2


def test_rotate_secret_prints_the_new_secret_once_and_the_overlap(gateway, cli, capsys):
    rotated = {**HOOK, "secret": "whsec_new", "previous_secret_expires_at": "2026-01-02T00:00:00Z"}
    gateway.on("POST", "/v1/webhooks/w1/rotate-secret", rotated)
    assert cli("webhooks", "rotate-secret", "w1", "--overlap", "3600") == 0
    out = capsys.readouterr().out
    assert "whsec_new" in out and "until 2026-01-02T00:00:00Z" in out
    assert json.loads(gateway.sent("POST", "/v1/webhooks/w1/rotate-secret")[-1].content) == {
        "overlap_seconds": 3600
    }
    assert cli("webhooks", "rotate-secret", "w1") == 0
    assert json.loads(gateway.sent("POST", "/v1/webhooks/w1/rotate-secret")[-1].content) == {}
    assert cli("webhooks", "rotate-secret", "w1", "--overlap", "-1") != 0  # refused before any request
    assert len(gateway.sent("POST", "/v1/webhooks/w1/rotate-secret")) == 2


def test_rotate_job_secret(gateway, cli, capsys):
    gateway.on(
        "POST", "/v1/webhooks/job-secret/rotate", {"secret": "whsec_job", "previous_secret_expires_at": None}
    )
    assert cli("webhooks", "rotate-job-secret", "--overlap", "0") == 0
    out = capsys.readouterr().out
    assert "whsec_job" in out and "no longer signs" in out
    assert json.loads(gateway.sent("POST", "/v1/webhooks/job-secret/rotate")[-1].content) == {
        "overlap_seconds": 0
    }


def test_redeliver_and_its_refusals(gateway, cli, capsys):
    delivery = {
        "id": "d1",
        "event_id": "e1",
        "webhook_id": "w1",
        "url": "https://example.com/new",
        "event_type": "job.succeeded",
        "job_id": None,
        "status": "pending",
        "attempts": 1,
        "next_attempt_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
        "delivered_at": None,
        "attempt_log": [],
    }
    gateway.on("POST", "/v1/webhook-deliveries/d1/redeliver", httpx.Response(202, json=delivery))
    assert cli("webhooks", "redeliver", "d1") == 0
    assert "Redelivering d1 (event e1)" in capsys.readouterr().out
    gateway.on(
        "POST",
        "/v1/webhook-deliveries/d1/redeliver",
        problem(409, "Conflict", "the delivery is still pending"),
    )
    assert cli("webhooks", "redeliver", "d1") == 65
    assert "still pending" in capsys.readouterr().err
    assert cli("webhooks", "redeliver", "nope") == 66
