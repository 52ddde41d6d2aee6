"""Metrics of the event plumbing: outbox relays, consumers, dead letters, consumer lag.

Module-level collectors on prometheus_client's default registry (the runtime serves it). Labels are
bounded: ``schema`` (one per service database), ``topic`` (the handful in :mod:`shared.contracts.topics`),
``consumer`` (the consumer group) and ``outcome``; never an event or record id.

Who updates what:

* :class:`shared.outbox.OutboxRelay` counts what it publishes and replays and refreshes the backlog
  gauges on its check cadence (every ``marker_check_seconds``).
* :func:`shared.consumers.subscribe` / ``subscribe_batch`` count every record once, by final outcome
  (``processed``, ``dead_lettered``, ``malformed``, or ``deferred`` when an outage outlasted the in-process
  retry window and the record was handed back to the broker for redelivery), and time every handler call.
* :func:`shared.consumers.refresh_consumer_lag` sets the lag gauge; the runtime calls it periodically.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_BACKLOG = Gauge(
    "gpufleet_outbox_backlog_events", "Outbox rows not yet published (replayed rows included)", ["schema"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "gpufleet_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none; a replayed row counts from when it was written)",
    ["schema"],
)
OUTBOX_PUBLISHED = Counter(
    "gpufleet_outbox_published_total",
    "Outbox rows the broker acknowledged (re-publishes included)",
    ["schema"],
)
OUTBOX_REPLAYS = Counter(
    "gpufleet_outbox_replays_total",
    "Times a relay found the broker had lost data and re-published its replay window",
    ["schema"],
)

EVENTS_CONSUMED = Counter(
    "gpufleet_events_consumed_total",
    "Records a consumer finished with, by outcome (processed, dead_lettered, malformed, deferred)",
    ["topic", "consumer", "outcome"],
)
EVENT_HANDLE_SECONDS = Histogram(
    "gpufleet_event_handle_seconds",
    "Time one handler call took (each attempt; a batch handler's call covers the whole batch)",
    ["topic", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_DEAD_LETTERED = Counter(
    "gpufleet_events_dead_lettered_total",
    "Records parked on <topic>.dlq (undecodable, or their handler kept failing)",
    ["topic", "consumer"],
)
CONSUMER_LAG = Gauge(
    "gpufleet_consumer_lag_events",
    "Records on a topic not yet committed by a consumer group (sum over partitions)",
    ["topic", "consumer"],
)
