"""``python -m services.monitoring``: the metrics consumer, sample retention and the utilization API.

Monitoring publishes nothing yet (alerts come later), so it has no outbox relay."""

from __future__ import annotations

import logging

from shared.contracts import topics
from shared.record_signing import FleetRecordKeys, SignedRecords
from shared.runtime import Fatal, Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import MonitoringSettings
from .output_bootstrap import bootstrap_output

log = logging.getLogger("gpufleet.monitoring")


def build(settings: MonitoringSettings) -> Runtime:
    rt = Runtime("monitoring", settings)
    db = rt.database(settings.monitoring_database_url, schema="monitoring", version=SCHEMA_VERSION)
    verifier = record_verifier(settings, rt)
    app = bootstrap(settings, db=db, auth=rt.authenticator(), verifier=verifier)
    output = bootstrap_output(settings, db=db, auth=rt.authenticator(), verifier=verifier)
    # Until the job topic is read no chunk can be placed (they wait, parked) and no attempt exists to
    # follow; samples attributed late are re-attributed anyway.
    rt.consumers(output.register_consumers, topics=(topics.OUTPUT, topics.JOBS))
    rt.consumers(app.register_consumers, topics=(topics.METRICS,))
    rt.grpc(settings.monitoring_grpc_listen, [*app.grpc_services, *output.grpc_services])
    rt.periodic("output-completion", output.complete_once, every=output.sweep_every_seconds)
    rt.periodic("output-retention", output.prune_once, every=output.prune_every_seconds)
    rt.periodic("sample-retention", app.prune_once, every=app.prune_every_seconds)
    return rt


def record_verifier(settings: MonitoringSettings, rt: Runtime) -> SignedRecords | None:
    """The check of the agents' signatures on metrics and output (one key cache for both), or None
    when the setting turns it off (said at start-up)."""
    if settings.monitoring_record_signatures == "off":
        log.warning("agent record signatures are not checked (GPUFLEET_MONITORING_RECORD_SIGNATURES=off)")
        return None
    if not settings.record_keys_target:
        raise Fatal(
            "checking agent record signatures needs fleet's NodeRegistryService: set "
            "GPUFLEET_FLEET_AGENT_GRPC_TARGET (or GPUFLEET_FLEET_GRPC_TARGET), or "
            "GPUFLEET_MONITORING_RECORD_SIGNATURES=off"
        )
    keys = FleetRecordKeys(settings.record_keys_target)
    rt.on_close(keys.close)
    return SignedRecords(keys)


def main() -> None:
    build(load_settings(MonitoringSettings)).run()


if __name__ == "__main__":
    main()
