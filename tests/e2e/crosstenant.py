"""Cross-tenant probes generated from the OpenAPI document and the generated gRPC descriptors.

Every REST operation and every tenant-facing gRPC method is turned into requests whose id-bearing
parameters (path and query parameters, headers, body and message fields) hold organization A's objects,
chosen by the parameter's name (:data:`PARAM_KINDS`, :data:`FIELD_KINDS`). Each such request is sent
with organization B's key twice: once with A's ids and once with ids that exist nowhere
(:meth:`World.missing`); the two answers must be the same (an existence oracle is a leak too), and
neither may carry anything of A's (:attr:`World.markers`: ids, names, secrets, commands, output).

A parameter, body field or message field whose name says it carries an id but that this module does
not know raises :class:`Unteachable`: a route or method added later cannot slip through unprobed; it
must be taught here (its kind, and organization A's object of that kind in the test's world).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import pkgutil
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gpufleet.v1
import grpc
import httpx
from google.protobuf import descriptor, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shared import scopes
from shared.cursors import decode_cursor, encode_cursor

# How long a response that does not end by itself (a stream) is read before it is compared.
STREAM_SECONDS = 1.0

# REST parameters (path, query, header) and JSON body fields that name one of A's objects -> its kind.
PARAM_KINDS: dict[str, str] = {
    "job_id": "job",
    "webhook_id": "webhook",
    "delivery_id": "delivery",
    "key_id": "key",
    "org_id": "organization",
    "organization_id": "organization",
    "user_id": "user",
    "gpu_id": "gpu",
    "last_event_id": "event",
    "Last-Event-ID": "event",
    "cursor": "cursor",
    "before_id": "audit",
    "Idempotency-Key": "idempotency_key",
    "invite_id": "invite",
    # Operator routes: a join token dedicated to A, the node running A's job.
    "token_id": "join_token",
    "node_id": "node",
    # Operator routes: a named operator (a principal of the product, no tenant's).
    "operator_id": "operator",
    # Projects (docs/projects.md): a project of A's.
    "project_id": "project",
    # The audit log (docs/audit.md): A's user as the actor, A's job as the target.
    "actor_user_id": "user",
    "target_id": "job",
}
# Kinds with no "missing" counterpart to compare with, held to the leak check only:
# * positions in the caller's own sequence, not objects: each organization's event log is numbered from
#   1, and an audit page ends before an id (keyset); B's answer from A's position is B's own data;
# * the shared fleet's GPUs: that a shared GPU exists and is held (not by whom) is every tenant's to
#   know (``GET /v1/gpus`` shows it as allocated), so B's answer for the GPU under A's job differs from
#   one for a GPU that does not exist; it must still name none of A's jobs.
UNPAIRED: frozenset[str] = frozenset({"event", "audit", "gpu"})
# Parameters that carry no tenant's object. Required ones get a value (enum, default, or VALUES);
# optional booleans and enums are also tried, each on its own, with every value they take.
PLAIN_PARAMS: frozenset[str] = frozenset(
    {
        "status",
        "limit",
        "offset",
        "follow",
        "attempt",
        "group_by",
        "from",
        "to",
        "include_running",
        "include_inactive",
        "include_archived",
        # An operator's plan (tier) name: the product's, not a tenant's.
        "name",
        "hours",
        "step",
        "types",
        # The GPU type catalog is the product's, not a tenant's (admin quota paths name a type).
        "gpu_type",
        # The audit log's filters (docs/audit.md): names of the product's services, actions, types, times.
        "service",
        "action",
        "target_type",
        "since",
        "until",
    }
)
# Values for required body fields and plain parameters, by name (else the schema's example or default).
VALUES: dict[str, Any] = {"command": "true", "name": "crosstenant-b", "gpu_type": "@catalog"}

# gRPC request fields that name one of A's objects -> its kind (``id``: see ID_OF_MESSAGE).
FIELD_KINDS: dict[str, str] = {
    "job_id": "job",
    "webhook_id": "webhook",
    "gpu_id": "gpu",
    "gpu_ids": "gpu",
    "user_id": "user",
    "organization_id": "organization",
    "after": "event",
    "cursor": "cursor",
    "before_id": "audit",
    "idempotency_key": "idempotency_key",
    "project_id": "project",
    "actor_user_id": "user",
    "target_id": "job",
}
# A request message's ``id`` field -> the kind of object it names.
ID_OF_MESSAGE: dict[str, str] = {
    "GetJobRequest": "job",
    "WatchJobRequest": "job",
    "CancelJobRequest": "job",
    "UpdateJobPriorityRequest": "job",
    "RevokeApiKeyRequest": "key",
    "DeleteWebhookRequest": "webhook",
    "UpdateWebhookRequest": "webhook",
    "RotateWebhookSecretRequest": "webhook",
    "RedeliverDeliveryRequest": "delivery",
    "RevokeInviteRequest": "invite",
    "GetProjectRequest": "project",
    "UpdateProjectRequest": "project",
    "ArchiveProjectRequest": "project",
}
FIELD_VALUES: dict[str, Any] = {
    "command": "true",
    "gpu_count": 1,
    "name": "crosstenant-b",
    "group_by": "day",
    "priority": 50,
    "hours": 24,
    "max_gpus": 1,
}
# Fields of a nested message left unset, by ``Message.field`` holding it: the method refuses them there (a
# batch's jobs carry no idempotency key of their own, the batch's own key is probed instead), so a slot in
# them would stop every probe at that refusal before the ids that matter are looked at.
NESTED_UNSET: dict[str, frozenset[str]] = {"SubmitJobsRequest.jobs": frozenset({"idempotency_key"})}
# gRPC methods whose answers are reads: a pair's whole answers are compared, not only the status.
READ_PREFIXES = ("Get", "List", "Read", "Follow", "Stream", "Summarize", "Watch")

_RECEIVER = ["http://127.0.0.1:9/crosstenant"]  # set by set_receiver
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
_ID_LIKE = re.compile(r"(^id$|_id$|_ids$|-id$|^cursor$|^after$|^before)", re.IGNORECASE)


def set_receiver(url: str) -> None:
    """Where webhooks that B creates while probing point (a local endpoint, not the internet)."""
    _RECEIVER[0] = url


class Unteachable(AssertionError):
    """A route or method with an id-bearing input this module does not know how to fill."""


@dataclass(frozen=True)
class Slot:
    """Where one of A's objects goes in a request: its kind and which of A's objects of that kind."""

    kind: str
    index: int = 0


@dataclass
class World:
    """Organization A's objects by kind (the first is the default), and what of A's B must never see."""

    values: dict[str, list[Any]]
    markers: set[str] = field(default_factory=set)

    def a(self, slot: Slot) -> Any:
        return self.values[slot.kind][slot.index]

    def missing(self, slot: Slot) -> Any:
        """A value of the same shape as A's that names nothing that exists (in any organization)."""
        value = self.a(slot)
        if slot.kind == "cursor":
            at, _ = decode_cursor(value)
            return encode_cursor(at, uuid.uuid4())
        if slot.kind in UNPAIRED:
            return value
        if slot.kind == "idempotency_key":
            return f"crosstenant-{uuid.uuid4().hex}"
        return str(uuid.uuid4())

    def leaks(self, text: str) -> list[str]:
        return sorted(m for m in self.markers if m and m in text)


def _fill(template: Any, choose: Callable[[Slot], Any], used: list[tuple[Any, str]]) -> Any:
    if isinstance(template, Slot):
        value = choose(template)
        used.append((value, f"<{template.kind}>"))
        return value
    if isinstance(template, dict):
        return {k: _fill(v, choose, used) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, choose, used) for v in template]
    return template


def _has_slot(template: Any, paired_only: bool = False) -> bool:
    """Whether ``template`` holds a slot (``paired_only``: one with a missing counterpart to compare)."""
    if isinstance(template, Slot):
        return not (paired_only and template.kind in UNPAIRED)
    if isinstance(template, dict):
        return any(_has_slot(v, paired_only) for v in template.values())
    if isinstance(template, list):
        return any(_has_slot(v, paired_only) for v in template)
    return False


def normalize(text: str, used: list[tuple[Any, str]]) -> str:
    """``text`` with the values this request put in replaced by their kind, and timestamps elided."""
    for value, name in sorted(used, key=lambda u: -len(str(u[0]))):
        if str(value):
            text = text.replace(str(value), name)
    return _TIMESTAMP.sub("<t>", text)


# ----------------------------------------------------------------------------- REST


@dataclass
class RestProbe:
    """One request template of one operation; its slots are filled with A's ids or missing ones."""

    method: str
    path: str
    path_params: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    body: Any

    @property
    def paired(self) -> bool:
        return _has_slot([self.path_params, self.query, self.headers, self.body], paired_only=True)

    def fill(self, choose: Callable[[Slot], Any]) -> tuple[dict[str, Any], list[tuple[Any, str]]]:
        used: list[tuple[Any, str]] = []
        path_params = _fill(self.path_params, choose, used)
        url = self.path  # the document's own path: the client's base URL is the gateway's root
        for name, value in path_params.items():
            url = url.replace("{" + name + "}", str(value))
        request = {
            "method": self.method,
            "url": url,
            "params": {
                k: str(v).lower() if isinstance(v, bool) else v
                for k, v in _fill(self.query, choose, used).items()
            },
            "headers": {k: str(v) for k, v in _fill(self.headers, choose, used).items()},
            "json": _fill(self.body, choose, used),
        }
        return request, used


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        non_null = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _resolve(spec, non_null[0]) if non_null else {}
    return schema


def _plain_value(name: str, schema: dict[str, Any], catalog: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    if name in VALUES:
        value = VALUES[name]
        return catalog if value == "@catalog" else value
    if name == "url":  # a webhook of B's: never to the internet
        return _RECEIVER[0]
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "crosstenant"


def _body(spec: dict[str, Any], schema: dict[str, Any], catalog: str, where: str) -> Any:
    """A minimal valid body: the required fields, plus every field that names one of A's objects."""
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if kind == "array":
        item = _resolve(spec, schema.get("items", {}))
        if item.get("type") == "object" and any(n in PARAM_KINDS for n in item.get("properties", {})):
            return [_body(spec, item, catalog, where)]
        return [] if not schema.get("minItems") else [_body(spec, item, catalog, where)]
    if kind != "object":
        return None
    out: dict[str, Any] = {}
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if name in PARAM_KINDS:
            out[name] = Slot(PARAM_KINDS[name])
        elif _ID_LIKE.search(name):
            raise Unteachable(f"{where}: body field {name!r} looks like an id; teach crosstenant.PARAM_KINDS")
        elif name in required:
            resolved = _resolve(spec, prop)
            if resolved.get("type") in ("object", "array") and name not in VALUES:
                out[name] = _body(spec, resolved, catalog, where)
            else:
                out[name] = _plain_value(name, resolved, catalog)
    return out


def _variants_of(name: str, schema: dict[str, Any]) -> list[Any]:
    if schema.get("type") == "boolean":
        return [True, False]
    return list(schema.get("enum", ()))


def rest_probes(spec: dict[str, Any], jobs: int, catalog: str) -> list[tuple[str, list[RestProbe]]]:
    """(``METHOD /path``, its probes) for every operation of ``spec``; :class:`Unteachable` for a
    parameter this module does not know. ``jobs``: how many of A's jobs each ``job_id`` takes in turn."""
    out: list[tuple[str, list[RestProbe]]] = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            base_path: dict[str, Any] = {}
            base_query: dict[str, Any] = {}
            base_headers: dict[str, Any] = {}
            optional: list[tuple[str, str, Any]] = []  # (where, name, value or Slot): one variant each
            for param in op.get("parameters", []):
                name, place, required = param["name"], param["in"], param.get("required", False)
                schema = _resolve(spec, param.get("schema", {}))
                target = {"path": base_path, "query": base_query, "header": base_headers}[place]
                if name in PARAM_KINDS:
                    if required:
                        target[name] = Slot(PARAM_KINDS[name])
                    else:
                        optional.append((place, name, Slot(PARAM_KINDS[name])))
                elif name in PLAIN_PARAMS:
                    if required:
                        target[name] = _plain_value(name, schema, catalog)
                        optional += [(place, name, v) for v in _variants_of(name, schema)[1:]]
                    else:
                        optional += [(place, name, v) for v in _variants_of(name, schema)]
                else:
                    raise Unteachable(
                        f"{where}: parameter {name!r} ({place}) is unknown; teach crosstenant.PARAM_KINDS "
                        "(an id of some kind) or PLAIN_PARAMS"
                    )
            body: Any = None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = _body(spec, content["application/json"]["schema"], catalog, where)
            elif content:
                raise Unteachable(f"{where}: request body {sorted(content)} is not JSON; teach crosstenant")
            probes: list[RestProbe] = []
            job_params = [k for k, v in base_path.items() if v == Slot("job")]
            for i in range(jobs if job_params else 1):
                params = {k: (Slot("job", i) if k in job_params else v) for k, v in base_path.items()}
                probes.append(
                    RestProbe(method.upper(), path, params, dict(base_query), dict(base_headers), body)
                )
            for place, name, value in optional:
                extra = (
                    [value]
                    if not (isinstance(value, Slot) and value.kind == "job")
                    else [Slot("job", i) for i in range(jobs)]
                )
                for v in extra:
                    probe = copy.deepcopy(probes[0])
                    {"query": probe.query, "header": probe.headers, "path": probe.path_params}[place][
                        name
                    ] = v
                    probes.append(probe)
            out.append((where, probes))
    return out


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    ended: bool


async def send(api: httpx.AsyncClient, request: dict[str, Any]) -> Answer:
    """Send one request; a body still streaming after :data:`STREAM_SECONDS` is cut there."""
    chunks: list[str] = []
    ended = True
    async with api.stream(**request) as r:
        try:
            async with asyncio.timeout(STREAM_SECONDS):
                async for chunk in r.aiter_text():
                    chunks.append(chunk)
        except TimeoutError:
            ended = False
        return Answer(r.status_code, dict(r.headers), "".join(chunks), ended)


def comparable(answer: Answer, used: list[tuple[Any, str]], whole: bool) -> tuple[Any, ...]:
    """What must be equal between B's answer for A's object and for a missing one."""
    ctype = answer.headers.get("content-type", "").split(";")[0]
    text = normalize(answer.text, used)
    problem_type = None
    body: Any = text
    if ctype.endswith("json") and answer.ended:
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        if isinstance(body, dict):
            body.pop("request_id", None)
            problem_type = body.get("type") if ctype == "application/problem+json" else None
    elif ctype == "text/event-stream":
        # Heartbeat comments come on a timer; the frames are what the caller learns.
        body = [line for line in text.splitlines() if line and not line.startswith(":")]
    out: tuple[Any, ...] = (answer.status, ctype, problem_type, answer.ended)
    return out + ((body,) if whole else ())


def rest_leaks(world: World, answer: Answer, used: list[tuple[Any, str]]) -> list[str]:
    headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    return world.leaks(normalize(answer.text + "\n" + headers, used))


# ----------------------------------------------------------------------------- gRPC


def _generated_methods() -> dict[str, descriptor.MethodDescriptor]:
    """``Service/Method`` -> descriptor, for every RPC of the generated gpufleet.v1 package (the walk
    tests/unit/shared/test_scopes.py makes to hold the scope table to the descriptors)."""
    found: dict[str, descriptor.MethodDescriptor] = {}
    for info in pkgutil.iter_modules(gpufleet.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"gpufleet.v1.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                found |= {f"{service.name}/{m.name}": m for m in service.methods}
    return found


def tenant_methods() -> dict[str, descriptor.MethodDescriptor]:
    """Every tenant-facing method of the scope table, with its descriptor (all of them must exist)."""
    generated = _generated_methods()
    listed = sorted(set(scopes.SCOPE_OF) | set(scopes.EVERY_KEY))
    unknown = [m for m in listed if m not in generated]
    assert not unknown, f"in shared/scopes.py but not in the generated descriptors: {unknown}"
    return {m: generated[m] for m in listed}


def _message_template(
    msg: descriptor.Descriptor, where: str, depth: int = 0, unset: frozenset[str] = frozenset()
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in msg.fields:
        name = f.name
        if name in unset:
            continue
        kind = ID_OF_MESSAGE.get(msg.name) if name == "id" else FIELD_KINDS.get(name)
        if name == "id" and kind is None:
            raise Unteachable(f"{where}: field {msg.name}.id is unknown; teach crosstenant.ID_OF_MESSAGE")
        if kind is not None:
            out[name] = [Slot(kind)] if f.is_repeated else Slot(kind)
        elif _ID_LIKE.search(name):
            raise Unteachable(
                f"{where}: field {msg.name}.{name} looks like an id; teach crosstenant.FIELD_KINDS"
            )
        elif f.message_type is not None and depth < 3:
            item = _message_template(
                f.message_type, where, depth + 1, NESTED_UNSET.get(f"{msg.name}.{name}", frozenset())
            )
            if _has_slot(item):
                out[name] = [item] if f.is_repeated else item
        elif name in FIELD_VALUES:
            out[name] = FIELD_VALUES[name]
    return out


@dataclass
class GrpcProbe:
    method: str  # Service/Method
    descriptor: descriptor.MethodDescriptor
    template: dict[str, Any]

    @property
    def paired(self) -> bool:
        return _has_slot(self.template, paired_only=True)

    @property
    def read(self) -> bool:
        return self.method.split("/")[1].startswith(READ_PREFIXES)

    def fill(self, choose: Callable[[Slot], Any], receiver_url: str) -> tuple[Any, list[tuple[Any, str]]]:
        used: list[tuple[Any, str]] = []
        values = _fill(self.template, choose, used)
        if "url" in {f.name for f in self.descriptor.input_type.fields}:
            values["url"] = receiver_url
        cls = message_factory.GetMessageClass(self.descriptor.input_type)
        return json_format.ParseDict(values, cls(), ignore_unknown_fields=False), used


def grpc_probes(jobs: int) -> list[tuple[str, list[GrpcProbe]]]:
    out: list[tuple[str, list[GrpcProbe]]] = []
    for name, method in tenant_methods().items():
        template = _message_template(method.input_type, name)
        probes = [GrpcProbe(name, method, template)]
        if _has_job(template):
            probes = [GrpcProbe(name, method, _with_job(template, i)) for i in range(jobs)]
        out.append((name, probes))
    return out


def _has_job(template: Any) -> bool:
    return any(s.kind == "job" for s in _slots(template))


def _slots(template: Any) -> Iterator[Slot]:
    if isinstance(template, Slot):
        yield template
    elif isinstance(template, dict):
        for v in template.values():
            yield from _slots(v)
    elif isinstance(template, list):
        for v in template:
            yield from _slots(v)


def _with_job(template: Any, index: int) -> Any:
    if isinstance(template, Slot):
        return Slot("job", index) if template.kind == "job" else template
    if isinstance(template, dict):
        return {k: _with_job(v, index) for k, v in template.items()}
    if isinstance(template, list):
        return [_with_job(v, index) for v in template]
    return template


@dataclass
class GrpcAnswer:
    code: grpc.StatusCode
    details: str
    messages: list[dict[str, Any]]
    trailers: str
    ended: bool


async def served_services(target: str) -> set[str]:
    """The services a server offers, by reflection (every server of the stack has it)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for reply in stub.ServerReflectionInfo(ask(), timeout=10):
            return {s.name for s in reply.list_services_response.service}
    return set()


async def call(channel: grpc.aio.Channel, probe: GrpcProbe, request: Any, key: str) -> GrpcAnswer:
    desc = probe.descriptor
    path = f"/{desc.containing_service.full_name}/{desc.name}"
    out_cls = message_factory.GetMessageClass(desc.output_type)
    metadata = (("authorization", f"Bearer {key}"),)
    messages: list[dict[str, Any]] = []
    ended = True
    code, details, trailers = grpc.StatusCode.OK, "", ""
    try:
        if desc.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=out_cls.FromString,
            )(request, metadata=metadata, timeout=10)
            try:
                async with asyncio.timeout(STREAM_SECONDS):
                    async for reply in stream:
                        messages.append(json_format.MessageToDict(reply))
            except TimeoutError:
                ended = False
                stream.cancel()
        else:
            unary = channel.unary_unary(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=out_cls.FromString,
            )
            messages.append(json_format.MessageToDict(await unary(request, metadata=metadata, timeout=10)))
    except grpc.aio.AioRpcError as err:
        code, details = err.code(), err.details() or ""
        trailers = repr(err.trailing_metadata())
    return GrpcAnswer(code, details, messages, trailers, ended)


def grpc_comparable(probe: GrpcProbe, answer: GrpcAnswer, used: list[tuple[Any, str]]) -> tuple[Any, ...]:
    # Heartbeats (a stream's keep-alives) come on a timer; what else arrived is what the caller learns.
    messages = [m for m in answer.messages if set(m) != {"heartbeat"}]
    out: tuple[Any, ...] = (answer.code, normalize(answer.details, used), answer.ended)
    if probe.read:
        out += (normalize(json.dumps(messages, sort_keys=True), used),)
    return out


def grpc_leaks(world: World, answer: GrpcAnswer, used: list[tuple[Any, str]]) -> list[str]:
    text = json.dumps(answer.messages) + answer.details + answer.trailers
    return world.leaks(normalize(text, used))
