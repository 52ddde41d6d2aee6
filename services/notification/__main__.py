"""``python -m services.notification``: the job and cost event consumers, the delivery worker, the
webhook API and the event stream (with its log's LISTEN/NOTIFY listener and retention).

It publishes only audit records (through its outbox relay)."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import NotificationSettings


def build(settings: NotificationSettings) -> Runtime:
    rt = Runtime("notification", settings)
    db = rt.database(settings.notification_database_url, schema="notification", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db, auth=rt.authenticator())
    rt.outbox(publishes=(topics.AUDIT,))  # the audit records of webhook changes (docs/audit.md)
    rt.consumers(app.register_consumers, topics=(topics.JOBS, topics.COSTS))
    rt.grpc(settings.notification_grpc_listen, app.grpc_services)
    rt.task("delivery-worker", app.worker.run)
    if app.listener is not None:
        rt.task("event-listener", app.listener.run)
    rt.periodic(
        "event-log-retention", app.prune_event_log, every=settings.notification_event_log_prune_seconds
    )
    rt.on_close(app.close)
    return rt


def main() -> None:
    build(load_settings(NotificationSettings)).run()


if __name__ == "__main__":
    main()
