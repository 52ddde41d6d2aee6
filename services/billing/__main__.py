"""``python -m services.billing``: the job-cost consumer, its outbox relay and the cost API."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import BillingSettings

PRUNE_EVERY_SECONDS = 3600.0  # tombstones of ended attempts live 8 days; an hourly sweep is plenty


def build(settings: BillingSettings) -> Runtime:
    rt = Runtime("billing", settings)
    db = rt.database(settings.billing_database_url, schema="billing", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db, auth=rt.authenticator())
    rt.outbox(publishes=(topics.COSTS,))
    rt.consumers(app.register_consumers, topics=(topics.JOBS,))
    rt.grpc(settings.billing_grpc_listen, app.grpc_services)
    rt.periodic("running-retention", app.prune_once, every=PRUNE_EVERY_SECONDS)
    return rt


def main() -> None:
    build(load_settings(BillingSettings)).run()


if __name__ == "__main__":
    main()
