"""Versioned topic names. A breaking payload change gets a new topic (``.v2``), never an edit.

:data:`ACCESS` is the one table of who writes and who reads each topic. Everything about topic access is
derived from it: the Kafka ACLs of ``deploy/kafka/acls.sh`` (:mod:`shared.contracts.kafka_acls`), the
producers and consumers in ``docs/asyncapi.yaml``, and the check every consumer makes on an event's
CloudEvents ``source`` (:func:`source_allowed`). docs/topics.md explains the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

JOBS = "gpufleet.jobs.v1"  # operator/internal: every job lifecycle event, key = job id
COSTS = "gpufleet.costs.v1"  # operator/internal: every cost record, key = job id
FLEET = "gpufleet.fleet.v1"  # internal: node and GPU inventory changes, key = gpu id / node id
METRICS = "gpufleet.metrics.v1"  # internal: GPU metric samples from agents, key = node id
OUTPUT = "gpufleet.output.v1"  # internal: job output chunks from agents, key = job id
AUDIT = "gpufleet.audit.v1"  # internal: every change a caller made, in any service, key = organization id


def dead_letter(topic: str) -> str:
    """Where a consumer of ``topic`` parks records it can never process (with the reason in a header)."""
    return f"{topic}.dlq"


def outbox_marker(schema: str) -> str:
    """One marker topic per outbox: its emptiness tells that relay the broker lost its data."""
    return f"gpufleet.outbox-marker.{schema}.v1"


ALL = (JOBS, COSTS, FLEET, METRICS)

# ------------------------------------------------------------------------------------ who may read what

SOURCE_PREFIX = "gpufleet/"
"""A CloudEvent ``source`` is ``gpufleet/<service>`` (agents: ``gpufleet/agent/<host name>``)."""

OPERATOR = "operator"
"""The principal of an operator's own tools and subscribers: reads every topic, writes none but the
consumed ones (to re-drive dead letters, :mod:`shared.deadletters`)."""


@dataclass(frozen=True)
class TopicAccess:
    producers: tuple[str, ...]  # services that write the topic (their Kafka principal = the service name)
    consumers: tuple[str, ...]  # services that read it, each in consumer groups named "<service>."...
    outbox: bool  # written through the producer's transactional outbox (else published directly)
    carries: str  # the tenant data on it: why no tenant may subscribe to it


ACCESS: dict[str, TopicAccess] = {
    JOBS: TopicAccess(
        producers=("scheduler",),
        consumers=("billing", "monitoring", "notification"),
        outbox=True,
        carries="every organization's job snapshots: commands, names, webhook URLs, exit codes, output tails",
    ),
    COSTS: TopicAccess(
        producers=("billing",),
        consumers=("notification",),
        outbox=True,
        carries="every organization's cost records (prices, GPUs held, totals)",
    ),
    FLEET: TopicAccess(
        producers=("fleet",),
        consumers=("scheduler",),
        outbox=True,
        carries="the inventory of every node and GPU, dedicated nodes' organizations included",
    ),
    METRICS: TopicAccess(
        producers=("agent",),
        consumers=("monitoring",),
        outbox=False,
        carries="GPU samples of every node, tagged with the organization whose job held the GPU",
    ),
    OUTPUT: TopicAccess(
        producers=("agent",),
        consumers=("monitoring",),
        outbox=False,
        carries="everything every job printed",
    ),
    AUDIT: TopicAccess(
        producers=("fleet", "notification", "scheduler"),
        consumers=("identity",),
        outbox=True,
        carries="who changed what in every organization, with the before/after state (secrets redacted)",
    ),
}
"""Every topic the services use, with its producers and consumers. All of them are operator/internal:
each carries tenant data, so no tenant credential may read any of them; tenants get their own events
through ``GET /v1/events`` (docs/events.md) and webhooks instead."""


def services() -> tuple[str, ...]:
    """Every service that touches a topic (each is one Kafka principal), in a stable order."""
    found = {s for access in ACCESS.values() for s in (*access.producers, *access.consumers)}
    return tuple(sorted(found))


def produced_by(service: str) -> tuple[str, ...]:
    return tuple(t for t, access in ACCESS.items() if service in access.producers)


def consumed_by(service: str) -> tuple[str, ...]:
    return tuple(t for t, access in ACCESS.items() if service in access.consumers)


def outbox_services() -> tuple[str, ...]:
    """Services with an outbox relay (each keeps the marker topic :func:`outbox_marker` of its schema)."""
    return tuple(sorted({p for access in ACCESS.values() if access.outbox for p in access.producers}))


def group_prefix(service: str) -> str:
    """Every consumer group of ``service`` starts with this (its Kafka ACL is a prefix ACL on it)."""
    return f"{service}."


def source_of(source: str) -> str | None:
    """The service a CloudEvent ``source`` names (``gpufleet/agent/node-7`` -> ``agent``), else None."""
    if not source.startswith(SOURCE_PREFIX):
        return None
    return source[len(SOURCE_PREFIX) :].split("/", 1)[0] or None


def source_allowed(topic: str, source: str) -> bool:
    """Whether an event with this ``source`` may be on ``topic``: its service is one of the topic's
    producers. A topic missing from :data:`ACCESS` allows none."""
    access = ACCESS.get(topic)
    return access is not None and source_of(source) in access.producers
