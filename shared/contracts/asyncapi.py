"""Generate the AsyncAPI 3.0 document for the topics from the contract code (``make asyncapi``).

The document is derived entirely from :data:`shared.contracts.CATALOG` and the pydantic payload models,
so it cannot drift from what the services publish; a unit test checks the committed copy is current.
Who writes and reads each topic comes from :data:`shared.contracts.topics.ACCESS` (docs/topics.md): every
topic is operator/internal, because every one carries tenant data.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from shared.contracts import CATALOG, topics

DESCRIPTIONS = {
    topics.JOBS: "Every job lifecycle change, with a full snapshot of the job. Key: job id. "
    "Partition order = the job's order of events.",
    topics.COSTS: "One cost record per finished job that held GPUs. Key: job id.",
    topics.FLEET: "GPU inventory and health changes from the fleet service. Key: GPU id.",
    topics.METRICS: "GPU metric samples, one record per node per sampling tick. Key: node id.",
}
SECURITY_SCHEME = "scramSha512"
ACCESS_NOTE = (
    "Operator/internal: carries {carries}. Written only by {producers}; read by {consumers} and by "
    "operators (principal `operator`, consumer groups `operator.*`). No tenant credential may read it: "
    "tenants receive their own events from `GET /v1/events` and webhooks (docs/topics.md)."
)


def _names(services: tuple[str, ...]) -> str:
    return ", ".join(f"`{s}`" for s in services)


def _description(topic: str) -> str:
    access = topics.ACCESS[topic]
    note = ACCESS_NOTE.format(
        carries=access.carries, producers=_names(access.producers), consumers=_names(access.consumers)
    )
    return f"{DESCRIPTIONS.get(topic, '')} {note}".strip()


CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary content mode, plus W3C trace context.",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {
            "type": "string",
            "format": "uuid",
            "description": "Unique per event; consumers deduplicate on it.",
        },
        "ce_source": {"type": "string", "description": "Producing service, e.g. gpufleet/scheduler."},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {
            "type": "string",
            "description": "The entity the event is about (job id, GPU id, node id).",
        },
        "ce_organizationid": {
            "type": "string",
            "format": "uuid",
            "description": "Tenant of the event, when it has one.",
        },
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the change that caused the event.",
        },
    },
}


def _message_name(event_type: str) -> str:
    return "".join(
        part.capitalize() for part in event_type.replace("gpufleet.", "").replace("_", ".").split(".")
    )


def build() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic, events in CATALOG.items():
        channel_id = topic.replace(".", "_")
        channel_messages = {}
        for event_type, model in events.items():
            name = _message_name(event_type)
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas[def_name] = definition
            schemas[model.__name__] = schema
            messages[name] = {
                "name": event_type,
                "title": name,
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventsKafkaHeaders"},
                "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
                "x-ce-type": event_type,
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        access = topics.ACCESS[topic]
        channels[channel_id] = {
            "address": topic,
            "description": _description(topic),
            "messages": channel_messages,
            "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
            "x-audience": "operator",
            "x-producers": list(access.producers),
            "x-consumers": list(access.consumers),
        }
        via = "through its transactional outbox" if access.outbox else "directly"
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Published by the {_names(access.producers)} ({via}, at least once); CloudEvents "
            f"source `gpufleet/<service>`. Consumers dead-letter an event from any other source.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Consumed by {_names(access.consumers)} (consumer groups `<service>.*`) and by "
            "operators; no tenant.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
    schemas["CloudEventsKafkaHeaders"] = CLOUDEVENTS_HEADERS
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "GPU fleet manager events",
            "version": "1.0.0",
            "description": (
                "Topics of the GPU fleet manager. Delivery is at least once: consumers must deduplicate on "
                "ce_id. Topic names carry the contract version; a breaking change gets a new topic.\n\n"
                "Every topic is operator/internal: each carries tenant data (commands, output tails, "
                "costs), so only the services and operators may read them, and only their producers "
                "may write them (Apache Kafka: SASL/SCRAM and ACLs, deploy/kafka/). Tenants receive "
                "their own events from `GET /v1/events` (Server-Sent Events) and webhooks. The internal "
                f"`{topics.OUTPUT}` (job output chunks, agents to monitoring) follows the same rules. "
                "See docs/topics.md.\n\n"
                "Generated by `python -m shared.contracts.asyncapi` from shared/contracts; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "make dev (embedded broker on loopback): no authentication and no ACLs, "
                "for one machine only; consumers still dead-letter events from unexpected sources.",
            },
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "Apache Kafka (docker-compose.yml, deploy/kafka/): SASL_PLAINTEXT with "
                "SCRAM-SHA-512, one principal per service plus `operator`, ACLs from "
                "shared/contracts/topics.py.",
                "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": SECURITY_SCHEME,
                    "description": "Each service, agent and operator tool authenticates as its own "
                    "principal (GPUFLEET_KAFKA_SASL_USERNAME / _PASSWORD).",
                }
            },
        },
    }


def render() -> str:
    return yaml.safe_dump(build(), sort_keys=False, width=110)


if __name__ == "__main__":
    sys.stdout.write(render())
