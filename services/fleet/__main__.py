"""``python -m services.fleet``: inventory and the agents' registration API, the offline sweeper, and
the relay of GPU events."""

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
    rt.grpc(settings.fleet_grpc_listen, app.grpc_services)
    rt.periodic("offline-sweep", app.sweep_once, every=app.sweep_interval)
    rt.on_close(app.close)
    return rt


def main() -> None:
    build(load_settings(FleetSettings)).run()


if __name__ == "__main__":
    main()
