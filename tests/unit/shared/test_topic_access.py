"""The topic access table (shared/contracts/topics.py ACCESS) agrees with the code that produces and consumes
each topic; the CloudEvents source check; the SASL settings reach aiokafka and FastStream."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from services.agent.adapters.metrics_publisher import KafkaMetricsPublisher
from services.agent.adapters.output_capture import KafkaOutputPublisher
from services.billing.adapters.events import SOURCE as BILLING_SOURCE
from services.billing.service_layer.handlers import CONSUMER as BILLING_CONSUMER
from services.fleet.adapters.events import SOURCE as FLEET_SOURCE
from services.monitoring.entrypoints.consumers import CONSUMER as MONITORING_METRICS
from services.monitoring.entrypoints.output_consumers import CHUNKS_CONSUMER, JOBS_CONSUMER
from services.notification.service_layer.handlers import COST_CONSUMER, JOB_CONSUMER
from services.scheduler.adapters.events import SOURCE as SCHEDULER_SOURCE
from services.scheduler.service_layer.handlers import FLEET_CONSUMER
from shared.consumers import checked_topic
from shared.contracts import CATALOG, costs, fleet, jobs, metrics, output, topics
from shared.events import Envelope, MalformedEvent, UnexpectedSource, check_source
from shared.kafka import broker_security, client_security, make_broker, make_producer
from shared.record_signing import RecordSigner
from shared.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[3]
TOPIC_NAMES = {name: value for name, value in vars(topics).items() if name.isupper() and "." in str(value)}


def test_every_topic_the_services_use_is_in_the_table_with_a_producer_and_a_consumer():
    assert set(topics.ACCESS) == {*CATALOG, topics.OUTPUT}
    for topic, access in topics.ACCESS.items():
        assert access.producers and access.consumers, topic
        assert not set(access.producers) & set(access.consumers), topic
        assert access.carries, f"{topic}: say what tenant data it carries"
    assert topics.OPERATOR not in topics.services()


def _runtime_calls(service: str) -> dict[str, set[str]]:
    """What ``services/<service>/__main__.py`` hands the runtime: rt.outbox(publishes=...) and
    rt.consumers(..., topics=...), as topic values."""
    tree = ast.parse((ROOT / "services" / service / "__main__.py").read_text())
    found: dict[str, set[str]] = {"outbox": set(), "consumers": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in found:
            for kw in node.keywords:
                if kw.arg in ("publishes", "topics") and isinstance(kw.value, ast.Tuple):
                    for elt in kw.value.elts:
                        assert isinstance(elt, ast.Attribute), ast.dump(elt)
                        found[node.func.attr].add(TOPIC_NAMES[elt.attr])
    return found


@pytest.mark.parametrize(
    "service", ["fleet", "scheduler", "billing", "monitoring", "notification", "identity"]
)
def test_the_table_says_what_each_service_runtime_publishes_and_consumes(service):
    calls = _runtime_calls(service)
    assert calls["outbox"] == {t for t in topics.produced_by(service) if topics.ACCESS[t].outbox}
    assert calls["consumers"] == set(topics.consumed_by(service))
    assert (service in topics.outbox_services()) == bool(calls["outbox"])


@pytest.mark.parametrize("service", ["gateway"])
def test_services_off_the_broker_are_not_in_the_table(service):
    assert _runtime_calls(service) == {"outbox": set(), "consumers": set()}
    assert service not in topics.services()


def test_the_agent_publishes_metrics_and_output_directly():
    assert set(topics.produced_by("agent")) == {topics.METRICS, topics.OUTPUT}
    assert not topics.consumed_by("agent") and "agent" not in topics.outbox_services()
    adapters = ROOT / "services" / "agent" / "adapters"
    assert "topics.METRICS" in (adapters / "metrics_publisher.py").read_text()
    assert "topics.OUTPUT" in (adapters / "output_capture.py").read_text()


def test_each_producer_source_is_allowed_on_its_topic_and_nowhere_else():
    settings = KafkaSettings(kafka_bootstrap_servers="k:9092")
    metrics_pub = KafkaMetricsPublisher(settings, "node-7", RecordSigner(Ed25519PrivateKey.generate()))
    sources = {
        topics.JOBS: SCHEDULER_SOURCE,
        topics.COSTS: BILLING_SOURCE,
        topics.FLEET: FLEET_SOURCE,
        topics.METRICS: metrics_pub.source,
        topics.OUTPUT: KafkaOutputPublisher(settings, metrics_pub, "node-7").source,
    }
    for topic, source in sources.items():
        assert topics.source_allowed(topic, source), (topic, source)
        for other in topics.ACCESS:
            if topics.source_of(source) not in topics.ACCESS[other].producers:
                assert not topics.source_allowed(other, source), (other, source)


@pytest.mark.parametrize(
    ("source", "service"),
    [
        ("gpufleet/scheduler", "scheduler"),
        ("gpufleet/agent/node-7", "agent"),
        ("gpufleet/agent", "agent"),
        ("gpufleet/schedulerx", "schedulerx"),
        ("gpufleet/", None),
        ("scheduler", None),
        ("evil/gpufleet/scheduler", None),
        ("", None),
    ],
)
def test_source_of_names_the_service(source, service):
    assert topics.source_of(source) == service


def test_a_look_alike_or_foreign_source_is_not_allowed():
    assert topics.source_allowed(topics.JOBS, "gpufleet/scheduler")
    for source in ("gpufleet/schedulerx", "gpufleet/billing", "gpufleet/agent/n1", "scheduler", "test", ""):
        assert not topics.source_allowed(topics.JOBS, source), source
    assert not topics.source_allowed("gpufleet.unknown.v1", "gpufleet/scheduler")


@pytest.mark.parametrize(
    ("service", "groups"),
    [
        ("billing", [BILLING_CONSUMER]),
        ("monitoring", [MONITORING_METRICS, CHUNKS_CONSUMER, JOBS_CONSUMER]),
        ("notification", [JOB_CONSUMER, COST_CONSUMER]),
        ("scheduler", [FLEET_CONSUMER]),
    ],
)
def test_consumer_groups_are_under_their_service_prefix(service, groups):
    """The group ACL is a prefix ACL on ``<service>.``: a group outside it would be refused."""
    for group in groups:
        assert group.startswith(topics.group_prefix(service)), group


def test_the_checked_topic_is_the_subscribed_one_or_the_one_whose_events_are_decoded():
    assert checked_topic(topics.JOBS, jobs.EVENT_TYPES) == topics.JOBS
    assert checked_topic("test.jobs.abc", jobs.EVENT_TYPES) == topics.JOBS
    assert checked_topic("test.costs", costs.EVENT_TYPES) == topics.COSTS
    assert checked_topic("test.fleet", fleet.EVENT_TYPES) == topics.FLEET
    assert checked_topic("test.metrics", metrics.EVENT_TYPES) == topics.METRICS
    assert checked_topic("test.output", output.EVENT_TYPES) == topics.OUTPUT
    some = {jobs.JOB_SUCCEEDED: jobs.EVENT_TYPES[jobs.JOB_SUCCEEDED]}
    assert checked_topic("test.some-jobs", some) == topics.JOBS
    assert checked_topic("test.mixed", {**jobs.EVENT_TYPES, **costs.EVENT_TYPES}) is None
    assert checked_topic("test.ping", {"test.ping": jobs.JobEventV1}) is None
    assert checked_topic("test.nothing", {}) is None


def test_check_source_refuses_a_foreign_producer_as_a_malformed_event():
    event = Envelope(type=costs.COST_RECORDED, source="gpufleet/billing", data=_cost())
    assert check_source(event, topics.COSTS) is event
    forged = Envelope(type=costs.COST_RECORDED, source="gpufleet/agent/node-7", data=_cost())
    with pytest.raises(UnexpectedSource) as refused:
        check_source(forged, topics.COSTS)
    assert isinstance(refused.value, MalformedEvent)
    assert "gpufleet/agent/node-7" in str(refused.value) and "gpufleet/billing" in str(refused.value)


def _cost() -> costs.CostRecordedV1:
    return costs.CostRecordedV1.model_construct()  # the check reads only the envelope's source and type


# ------------------------------------------------------------------------------------- SASL settings


def _sasl(protocol: str = "SASL_PLAINTEXT") -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers="kafka:9092",
        kafka_security_protocol=protocol,  # type: ignore[arg-type]
        kafka_sasl_username="billing",
        kafka_sasl_password="s3cret",  # type: ignore[arg-type]
    )


def test_plaintext_is_the_default_and_adds_nothing():
    plain = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:19092")
    assert plain.kafka_security_protocol == "PLAINTEXT"
    assert client_security(plain) == {} and client_security("127.0.0.1:19092") == {}
    assert broker_security(plain) is None


def test_sasl_needs_a_username_and_a_password():
    with pytest.raises(ValidationError, match="GPUFLEET_KAFKA_SASL_USERNAME"):
        KafkaSettings(kafka_bootstrap_servers="k:9092", kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValidationError):
        KafkaSettings(
            kafka_bootstrap_servers="k:9092",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="x",
        )


def test_sasl_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("GPUFLEET_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("GPUFLEET_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("GPUFLEET_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("GPUFLEET_KAFKA_SASL_USERNAME", "fleet")
    monkeypatch.setenv("GPUFLEET_KAFKA_SASL_PASSWORD", "pw")
    settings = KafkaSettings()  # type: ignore[call-arg]
    assert client_security(settings)["sasl_mechanism"] == "SCRAM-SHA-256"
    assert "pw" not in repr(settings)  # a SecretStr: never logged


def test_sasl_reaches_the_producer_and_the_faststream_broker():
    settings = _sasl()
    kwargs = client_security(settings)
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("billing", "s3cret")
    assert kwargs["ssl_context"] is None

    async def build() -> None:
        producer = make_producer(settings, "t")
        client = producer.client
        assert (client._security_protocol, client._sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
        assert (client._sasl_plain_username, client._sasl_plain_password) == ("billing", "s3cret")
        # What FastStream passes to aiokafka when it connects (its consumers and its producer).
        connect = make_broker(settings, "t").config.broker_config.builder.keywords
        assert (
            connect["security_protocol"] == "SASL_PLAINTEXT" and connect["sasl_mechanism"] == "SCRAM-SHA-512"
        )
        assert (connect["sasl_plain_username"], connect["sasl_plain_password"]) == ("billing", "s3cret")

    asyncio.run(build())


def test_sasl_ssl_checks_the_broker_certificate():
    settings = _sasl("SASL_SSL")
    assert client_security(settings)["ssl_context"] is not None
    security = broker_security(settings)
    assert security is not None and security.use_ssl and security.ssl_context is not None
