"""``python -m services.monitoring``: the metrics consumer, sample retention and the utilization API.

Monitoring publishes nothing yet (alerts come later), so it has no outbox relay."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import MonitoringSettings
from .output_bootstrap import bootstrap_output


def build(settings: MonitoringSettings) -> Runtime:
    rt = Runtime("monitoring", settings)
    db = rt.database(settings.monitoring_database_url, schema="monitoring", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db, auth=rt.authenticator())
    output = bootstrap_output(settings, db=db, auth=rt.authenticator())
    # The job topic first: consumers join their groups one after the other (seconds each on the
    # embedded broker), and until it is read no chunk can be placed (they wait, parked) and no
    # attempt exists to follow; samples attributed late are re-attributed anyway.
    rt.consumers(output.register_consumers, topics=(topics.OUTPUT, topics.JOBS))
    rt.consumers(app.register_consumers, topics=(topics.METRICS,))
    rt.grpc(settings.monitoring_grpc_listen, [*app.grpc_services, *output.grpc_services])
    rt.periodic("output-completion", output.complete_once, every=output.sweep_every_seconds)
    rt.periodic("output-retention", output.prune_once, every=output.prune_every_seconds)
    rt.periodic("sample-retention", app.prune_once, every=app.prune_every_seconds)
    return rt


def main() -> None:
    build(load_settings(MonitoringSettings)).run()


if __name__ == "__main__":
    main()
