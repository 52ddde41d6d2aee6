"""``python -m services.identity``: organizations, users, API keys and ``Authenticate`` over gRPC, and the
one audit log of every service (its own changes, and every other service's from ``gpufleet.audit.v1``)."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import IdentitySettings

AUDIT_PRUNE_EVERY_SECONDS = 3600.0


def build(settings: IdentitySettings) -> Runtime:
    rt = Runtime("identity", settings)
    db = rt.database(settings.identity_database_url, schema="identity", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db)
    rt.consumers(app.register_consumers, topics=(topics.AUDIT,))
    rt.grpc(settings.identity_grpc_listen, app.grpc_services)
    if settings.identity_audit_retention_days:
        rt.periodic("audit-retention", app.prune_audit_once, every=AUDIT_PRUNE_EVERY_SECONDS)
    return rt


def main() -> None:
    build(load_settings(IdentitySettings)).run()


if __name__ == "__main__":
    main()
