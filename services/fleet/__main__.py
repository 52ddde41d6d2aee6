"""``python -m services.fleet``: inventory and the agents' registration API (on a listener of its own
when ``GPUFLEET_FLEET_AGENT_GRPC_LISTEN`` is set), the offline sweeper, and the relay of GPU events."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import FleetSettings


def build(settings: FleetSettings) -> Runtime:
    rt = Runtime("fleet", settings)
    db = rt.database(settings.fleet_database_url, schema="fleet", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db, auth=rt.authenticator())
    rt.outbox(publishes=(topics.FLEET, topics.AUDIT))
    rt.grpc_split(
        settings.fleet_grpc_listen,
        app.grpc_services,
        agent_listen=settings.fleet_agent_grpc_listen,
        agent_services=app.agent_grpc_services,
        agent_setting="GPUFLEET_FLEET_AGENT_GRPC_LISTEN",
    )
    rt.periodic("offline-sweep", app.sweep_once, every=app.sweep_interval)
    rt.on_close(app.close)
    return rt


def main() -> None:
    build(load_settings(FleetSettings)).run()


if __name__ == "__main__":
    main()
