"""``python -m services.notification``: the job event consumer, the delivery worker and the webhook API.

It publishes nothing, so there is no outbox relay."""

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
    rt.consumers(app.register_consumers, topics=(topics.JOBS,))
    rt.grpc(settings.notification_grpc_listen, app.grpc_services)
    rt.task("delivery-worker", app.worker.run)
    rt.on_close(app.close)
    return rt


def main() -> None:
    build(load_settings(NotificationSettings)).run()


if __name__ == "__main__":
    main()
