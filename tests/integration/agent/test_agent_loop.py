"""The agent's core loop in-process, against fake fleet and scheduler gRPC servers and the real broker."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

from services.agent.adapters.report_store import JsonReportStore
from services.agent.bootstrap import bootstrap
from services.agent.config import AgentSettings
from services.agent.domain.model import LOST_MESSAGE, SHUTDOWN_MESSAGE, JobStarted
from shared import node_identity, record_signing
from shared.contracts import topics
from shared.contracts.metrics import EVENT_TYPES
from shared.embedded.postgres import free_port
from shared.errors import NotFound, Unauthenticated
from shared.events import decode, header_map
from shared.grpc import bearer, grpc_service, serve

pytestmark = pytest.mark.integration

# The join token the agent starts with and the node credential the fake fleet exchanges it for.
TOKEN = node_identity.new_join_token()
CREDENTIAL = node_identity.new_credential()


def require_agent(context, _token: str = "", *, joining: bool = False) -> None:
    """What fleet and the scheduler check (faked): the node credential, or at registration the join token."""
    presented = bearer(context)
    if presented != CREDENTIAL and not (joining and presented == TOKEN):
        raise Unauthenticated("invalid node credential")


WAIT = 30.0


@grpc_service
class FakeFleet(fleet_pb2_grpc.NodeRegistryServiceServicer):
    def __init__(self) -> None:
        self.node_id = str(uuid.uuid4())
        self.registrations: list[fleet_pb2.RegisterNodeRequest] = []
        self.presented: list[str | None] = []
        self.gpu_ids: dict[int, str] = {}
        self.forget_once = False

    async def RegisterNode(self, request, context):
        require_agent(context, joining=True)
        joined = bearer(context) == TOKEN
        self.presented.append(bearer(context))
        self.registrations.append(request)
        self.gpu_ids = {g.index: str(uuid.uuid5(uuid.NAMESPACE_URL, g.uuid)) for g in request.gpus}
        return fleet_pb2.RegisterNodeResponse(
            node_id=self.node_id,
            heartbeat_interval_seconds=1,
            gpus=[
                fleet_pb2.RegisteredGpu(index=i, gpu_id=g, gpu_type="a100-80gb", cost_per_hour="2.5")
                for i, g in self.gpu_ids.items()
            ],
            node_credential=fleet_pb2.NodeCredential(node_id=self.node_id, credential=CREDENTIAL)
            if joined
            else None,
        )

    async def Heartbeat(self, request, context):
        require_agent(context, TOKEN)
        known = not self.forget_once
        self.forget_once = False
        return fleet_pb2.HeartbeatResponse(known=known)


@grpc_service
@dataclass
class FakeScheduler(scheduler_pb2_grpc.NodeAgentServiceServicer):
    assignments: dict[str, scheduler_pb2.Assignment] = field(default_factory=dict)
    reports: list[tuple[str, object]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def assign(self, command: str, gpus: list[int], status: str = "scheduled", org: str | None = None) -> str:
        job_id = str(uuid.uuid4())
        self.assignments[job_id] = scheduler_pb2.Assignment(
            job_id=job_id,
            command=command,
            gpu_indices=gpus,
            organization_id=org or str(uuid.uuid4()),
            status=status,
        )
        return job_id

    watches: list[int] = field(default_factory=list)  # known_revision of each WatchAssignments
    batches: list[int] = field(default_factory=list)  # size of each ReportJobs call

    async def GetAssignments(self, request, context):
        require_agent(context, TOKEN)
        return scheduler_pb2.GetAssignmentsResponse(assignments=list(self.assignments.values()))

    async def WatchAssignments(self, request, context):
        # Tests change self.assignments in place: a quick re-check stands in for the real change signal.
        require_agent(context, TOKEN)
        self.watches.append(request.known_revision)
        revision, sent = request.known_revision, None
        while True:
            current = [a.SerializeToString() for a in self.assignments.values()]
            if current != sent:
                revision += 1
                update = scheduler_pb2.AssignmentsUpdate(
                    revision=revision, assignments=list(self.assignments.values())
                )
                yield update
                sent = current
            await asyncio.sleep(0.02)

    async def ReportJobs(self, request, context):
        require_agent(context, TOKEN)
        self.batches.append(len(request.reports))
        done = []
        for report in request.reports:
            inner = getattr(report, report.WhichOneof("report"))
            apply = self._started if report.HasField("started") else self._finished
            try:
                apply(inner)
            except NotFound:
                pass  # refused for good: acknowledged all the same
            done.append(report.job_id)
        return scheduler_pb2.ReportJobsResponse(acknowledged=done)

    async def ReportJobStarted(self, request, context):
        require_agent(context, TOKEN)
        self._started(request)
        return common_pb2.Empty()

    async def ReportJobFinished(self, request, context):
        require_agent(context, TOKEN)
        self._finished(request)
        return common_pb2.Empty()

    def _started(self, request) -> None:
        if request.job_id not in self.assignments:
            raise NotFound("no such job")
        self.assignments[request.job_id].status = "running"
        self._record("started", request)

    def _finished(self, request) -> None:
        if self.assignments.pop(request.job_id, None) is None:
            raise NotFound("no such job")
        self._record("finished", request)

    def _record(self, kind: str, request: object) -> None:
        self.reports.append((kind, request))
        self.changed.set()

    def of(self, job_id: str) -> list[tuple[str, object]]:
        return [(k, r) for k, r in self.reports if r.job_id == job_id]

    async def wait_finished(self, job_id: str):
        async with asyncio.timeout(WAIT):
            while not any(k == "finished" for k, _ in self.of(job_id)):
                self.changed.clear()
                await self.changed.wait()
        return self.of(job_id)


@dataclass
class Harness:
    fleet: FakeFleet
    scheduler: FakeScheduler
    settings: AgentSettings
    app: object
    restart_scheduler: Callable[[], Awaitable[None]]


@grpc_service
@dataclass
class LegacyScheduler(FakeScheduler):
    """A scheduler from before pushed assignments and batched reports."""

    async def WatchAssignments(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        yield  # a stream's method is an async generator (what the server iterates)

    async def ReportJobs(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


@asynccontextmanager
async def running_agent(
    kafka, state_dir: Path, scheduler: FakeScheduler | None = None, **overrides
) -> AsyncIterator[Harness]:
    fleet, scheduler = FakeFleet(), scheduler or FakeScheduler()
    fleet_port, scheduler_port = free_port(), free_port()
    fleet_server, _ = await serve(
        f"127.0.0.1:{fleet_port}",
        [(fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server, fleet)],
        ["gpufleet.v1.NodeRegistryService"],
    )

    async def serve_scheduler():
        server, _ = await serve(
            f"127.0.0.1:{scheduler_port}",
            [(scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server, scheduler)],
            ["gpufleet.v1.NodeAgentService"],
        )
        return server

    servers = [await serve_scheduler()]

    async def restart_scheduler() -> None:
        await servers[-1].stop(0)  # ends the agent's stream
        await asyncio.sleep(0.2)
        servers.append(await serve_scheduler())

    values = dict(
        agent_gpu_backend="simulated",
        agent_sim_gpu_count=2,
        agent_hostname=f"it-{uuid.uuid4().hex[:8]}",
        agent_state_dir=state_dir,
        agent_join_token=TOKEN,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_idempotent_producer=False,
        kafka_topic_partitions=3,
        fleet_grpc_target=f"127.0.0.1:{fleet_port}",
        scheduler_grpc_target=f"127.0.0.1:{scheduler_port}",
        agent_poll_seconds=0.1,
        agent_metrics_interval_seconds=0.3,
        agent_kill_grace_seconds=2,
    )
    values.update(overrides)
    values.setdefault("agent_jobs_dir", Path(tempfile.mkdtemp(prefix="gpufleet-it-jobs-")))
    settings = AgentSettings(**values)
    app = bootstrap(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.agent.run(stop))
    try:
        yield Harness(fleet, scheduler, settings, app, restart_scheduler)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
        await app.close()
        await fleet_server.stop(0)
        await servers[-1].stop(0)
        if "agent_jobs_dir" not in overrides:
            shutil.rmtree(settings.agent_jobs_dir, ignore_errors=True)


async def test_runs_a_job_and_reports_exit_code_output_and_gpus(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign(
            'echo hello; echo "cuda=$CUDA_VISIBLE_DEVICES job=$GPUFLEET_JOB_ID"; '
            'echo "token=${GPUFLEET_AGENT_TOKEN:-none}"; pwd; exit 3',
            [1, 0],
        )
        reports = await h.scheduler.wait_finished(job_id)
    (reg,) = h.fleet.registrations
    assert reg.gpu_backend == "simulated" and [g.index for g in reg.gpus] == [0, 1]
    assert all(g.uuid.startswith("GPU-sim-") for g in reg.gpus)
    assert [k for k, _ in reports] == ["started", "finished"]
    started, finished = reports[0][1], reports[1][1]
    assert started.node_id == h.fleet.node_id and started.started_at
    assert finished.has_exit_code and finished.exit_code == 3 and not finished.cancelled
    lines = finished.output_tail.splitlines()
    assert lines[:3] == ["hello", f"cuda=1,0 job={job_id}", "token=none"]
    assert lines[3] == str(h.settings.agent_jobs_dir / job_id)
    assert not (h.settings.agent_jobs_dir / job_id).exists()  # the folder goes with the job
    assert finished.finished_at and finished.error_message == ""


async def test_cancel_of_a_running_job_is_reported_cancelled(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign("echo started; sleep 60", [0])
        output = h.settings.agent_state_dir / "shims" / job_id / "output"
        async with asyncio.timeout(WAIT):
            while h.scheduler.assignments[job_id].status != "running":
                await asyncio.sleep(0.05)
            # Running is reported when its supervisor starts; cancel once the command has printed.
            while not (output.exists() and b"started" in output.read_bytes()):
                await asyncio.sleep(0.05)
        h.scheduler.assignments[job_id].cancel_requested = True
        reports = await h.scheduler.wait_finished(job_id)
    finished = reports[-1][1]
    assert finished.cancelled and "started" in finished.output_tail
    assert finished.exit_code != 0  # sleep did not run its 60 seconds to a clean end


async def test_cancel_before_start_never_runs_the_command(kafka, tmp_path):
    marker = tmp_path / "ran"
    async with running_agent(kafka, tmp_path / "state") as h:
        job_id = str(uuid.uuid4())
        h.scheduler.assignments[job_id] = scheduler_pb2.Assignment(
            job_id=job_id,
            command=f"touch {marker}",
            gpu_indices=[0],
            status="scheduled",
            cancel_requested=True,
            organization_id=str(uuid.uuid4()),
        )
        reports = await h.scheduler.wait_finished(job_id)
    assert [k for k, _ in reports] == ["finished"]
    assert reports[0][1].cancelled and not reports[0][1].has_exit_code
    assert not marker.exists()


async def test_a_running_job_unknown_here_is_reported_lost(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign("sleep 60", [0], status="running")
        reports = await h.scheduler.wait_finished(job_id)
    finished = reports[-1][1]
    assert not finished.has_exit_code and finished.error_message == LOST_MESSAGE


async def test_the_agent_registers_again_when_fleet_forgets_the_node(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        h.fleet.forget_once = True
        async with asyncio.timeout(WAIT):
            while len(h.fleet.registrations) < 2:
                await asyncio.sleep(0.05)
    assert h.fleet.registrations[0].hostname == h.fleet.registrations[1].hostname


async def test_reports_left_on_disk_by_a_previous_run_are_delivered(kafka, tmp_path):
    from datetime import UTC, datetime

    fleet_side_job = str(uuid.uuid4())
    JsonReportStore(tmp_path / "pending_reports.json").save([JobStarted(fleet_side_job, datetime.now(UTC))])
    async with running_agent(kafka, tmp_path) as h:
        h.scheduler.assignments[fleet_side_job] = scheduler_pb2.Assignment(
            job_id=fleet_side_job, command="true", gpu_indices=[0], status="scheduled"
        )
        reports = await h.scheduler.wait_finished(fleet_side_job)
    assert [k for k, _ in reports] == ["started", "finished"]
    assert reports[1][1].error_message == LOST_MESSAGE  # it started before the restart: never run twice
    async with asyncio.timeout(WAIT):
        while JsonReportStore(tmp_path / "pending_reports.json").load():
            await asyncio.sleep(0.05)


async def test_metric_samples_arrive_with_cloudevents_headers_and_the_holding_job(kafka, tmp_path):
    consumer = AIOKafkaConsumer(
        topics.METRICS,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"test-agent-{uuid.uuid4().hex[:8]}",
    )
    org = str(uuid.uuid4())
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign("sleep 60", [1], org=org)
        await consumer.start()
        node = h.fleet.node_id.encode()
        busy = None
        try:
            async with asyncio.timeout(WAIT):
                while busy is None:
                    batch = await consumer.getmany(timeout_ms=500)
                    for record in (r for rs in batch.values() for r in rs if r.key == node):
                        env = decode(record.headers, record.value, EVENT_TYPES)
                        if any(s.job_id for s in env.data.samples):
                            busy = (record, env)
        finally:
            await consumer.stop()
        h.scheduler.assignments[job_id].cancel_requested = True
        await h.scheduler.wait_finished(job_id)
    record, env = busy
    headers = header_map(record.headers)
    assert headers["ce_specversion"] == "1.0" and headers["ce_type"] == "gpufleet.gpu.metrics_sampled"
    assert headers["ce_source"] == f"gpufleet/agent/{h.settings.agent_hostname}"
    assert str(env.data.node_id) == h.fleet.node_id
    # Signed with the key the agent registered (shared.record_signing): taken as this node's alone.
    registered_key = h.fleet.registrations[-1].record_public_key
    assert record_signing.valid_public_key(registered_key)
    assert record_signing.signer_of(record.headers) == h.fleet.node_id
    assert (
        record_signing.check(registered_key, record.topic, record.key, record.headers, record.value) is None
    )
    by_gpu = {str(s.gpu_id): s for s in env.data.samples}
    held = by_gpu[h.fleet.gpu_ids[1]]
    assert str(held.job_id) == job_id and str(held.organization_id) == org and held.gpu_type == "a100-80gb"
    idle = by_gpu[h.fleet.gpu_ids[0]]
    assert idle.job_id is None and idle.organization_id is None


async def test_unauthenticated_agent_keeps_retrying_and_registers_nothing(kafka, tmp_path):
    async with running_agent(kafka, tmp_path, agent_join_token=node_identity.new_join_token()) as h:
        await asyncio.sleep(1.0)
    assert h.fleet.registrations == []


async def test_stopping_the_agent_stops_its_jobs_and_reports_them(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign("trap '' TERM; echo stubborn; sleep 60", [0])
        output = h.settings.agent_state_dir / "shims" / job_id / "output"
        async with asyncio.timeout(WAIT):
            while h.scheduler.assignments[job_id].status != "running":
                await asyncio.sleep(0.05)
            # Running is reported when the supervisor starts: stop only once the trap is set (it printed).
            while not (output.exists() and b"stubborn" in output.read_bytes()):
                await asyncio.sleep(0.05)
    # The context exit stopped the agent: SIGTERM was ignored, SIGKILL after the grace period.
    finished = h.scheduler.of(job_id)[-1][1]
    assert finished.error_message == SHUTDOWN_MESSAGE and not finished.cancelled
    assert finished.exit_code == 128 + 9


async def test_a_job_past_its_time_limit_is_warned_stopped_and_reported_timed_out(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign("echo started; sleep 60", [0])
        h.scheduler.assignments[job_id].time_limit_seconds = 1
        h.scheduler.assignments[job_id].attempt = 2
        reports = await h.scheduler.wait_finished(job_id)
    finished = reports[-1][1]
    assert finished.timed_out and not finished.cancelled and finished.attempt == 2
    assert finished.error_message.startswith("timed out") and finished.exit_code == 128 + 15
    lines = finished.output_tail.splitlines()
    assert lines[0] == "started"
    assert any("[gpufleet] time limit of 1 s: the job is stopped in" in line for line in lines)
    assert any("[gpufleet] time limit of 1 s reached" in line for line in lines)


async def test_gang_members_get_their_rank_and_the_rendezvous_in_their_environment(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        job_id = h.scheduler.assign(
            'echo "$GPUFLEET_RANK/$GPUFLEET_WORLD_SIZE $GPUFLEET_NODE_NAMES"; '
            'echo "$RANK/$WORLD_SIZE/$LOCAL_RANK $MASTER_ADDR:$MASTER_PORT"',
            [0],
        )
        a = h.scheduler.assignments[job_id]
        a.rank, a.world_size, a.master_addr, a.master_port = 1, 2, "node-a", 29612
        a.node_names.extend(["node-a", "node-b"])
        single = h.scheduler.assign('echo "$RANK/$WORLD_SIZE $MASTER_ADDR:$MASTER_PORT"', [1])
        h.scheduler.assignments[single].master_port = 29777
        gang = await h.scheduler.wait_finished(job_id)
        alone = await h.scheduler.wait_finished(single)
    assert gang[-1][1].output_tail.splitlines() == ["1/2 node-a,node-b", "1/2/0 node-a:29612"]
    assert alone[-1][1].output_tail.splitlines() == ["0/1 127.0.0.1:29777"]


async def test_registration_reports_capacity_and_labels_and_reports_go_in_batches(kafka, tmp_path):
    async with running_agent(
        kafka, tmp_path, agent_cpu_cores=12, agent_ram_mb=4096, agent_labels="nvlink_domain=a,rack=r1"
    ) as h:
        jobs = [h.scheduler.assign("true", [i % 2]) for i in range(6)]
        for job_id in jobs:
            await h.scheduler.wait_finished(job_id)
    (reg,) = h.fleet.registrations
    assert (reg.cpu_cores, reg.ram_mb, dict(reg.labels)) == (12, 4096, {"nvlink_domain": "a", "rack": "r1"})
    assert sum(h.scheduler.batches) >= 12 and h.scheduler.watches[0] == 0


async def test_the_agent_reconnects_to_a_restarted_scheduler_with_its_known_revision(kafka, tmp_path):
    async with running_agent(kafka, tmp_path) as h:
        first = h.scheduler.assign("true", [0])
        await h.scheduler.wait_finished(first)
        known = h.app.agent.revision
        assert known > 0
        await h.restart_scheduler()
        second = h.scheduler.assign("true", [0])
        await h.scheduler.wait_finished(second)
    assert h.scheduler.watches[-1] >= known


async def test_an_agent_works_against_a_scheduler_without_watch_or_batches(kafka, tmp_path):
    async with running_agent(kafka, tmp_path, LegacyScheduler()) as h:
        job_id = h.scheduler.assign("echo old; exit 4", [0])
        reports = await h.scheduler.wait_finished(job_id)
    assert [k for k, _ in reports] == ["started", "finished"]
    assert reports[-1][1].exit_code == 4 and h.scheduler.watches == [] and h.scheduler.batches == []


async def test_the_join_token_is_exchanged_once_and_the_credential_kept_0600(kafka, tmp_path):
    import stat

    async with running_agent(kafka, tmp_path) as h:
        async with asyncio.timeout(WAIT):
            while not h.fleet.registrations:
                await asyncio.sleep(0.05)
    assert h.fleet.presented[0] == TOKEN
    stored = tmp_path / "node_credential.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert CREDENTIAL in stored.read_text()
    assert not any(TOKEN in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    # A restarted agent presents its credential; the (spent) join token it is given is never sent.
    async with running_agent(kafka, tmp_path) as h:
        async with asyncio.timeout(WAIT):
            while not h.fleet.registrations:
                await asyncio.sleep(0.05)
    assert h.fleet.presented and set(h.fleet.presented) == {CREDENTIAL}
