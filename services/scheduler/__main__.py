"""``python -m services.scheduler``: the job API, the agents' API (on a listener of its own when
``GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN`` is set), the fleet consumer and the placement loop in one
process (replicas are hot standbys for the loop)."""

from __future__ import annotations

from shared.contracts import topics
from shared.runtime import Runtime, load_settings

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap_app
from .config import SchedulerSettings


def build(settings: SchedulerSettings) -> Runtime:
    rt = Runtime("scheduler", settings)
    db = rt.database(settings.scheduler_database_url, schema="scheduler", version=SCHEMA_VERSION)
    app = bootstrap_app(settings, db=db, auth=rt.authenticator())
    rt.outbox(publishes=(topics.JOBS, topics.AUDIT))
    rt.consumers(app.register_consumers, topics=(topics.FLEET,))
    rt.grpc_split(
        settings.scheduler_grpc_listen,
        app.grpc_services,
        agent_listen=settings.scheduler_agent_grpc_listen,
        agent_services=app.agent_grpc_services,
        agent_setting="GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN",
    )
    rt.task("scheduling-loop", app.run_scheduling_loop)
    rt.periodic("jobs-by-state", app.measure_jobs, every=5.0)
    rt.on_close(app.close)
    return rt


def main() -> None:
    build(load_settings(SchedulerSettings)).run()


if __name__ == "__main__":
    main()
