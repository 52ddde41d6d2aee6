from gpufleet.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FleetNode(_message.Message):
    __slots__ = ("node", "organization_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    node: Node
    organization_id: str
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., organization_id: _Optional[str] = ...) -> None: ...

class ListAllNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_cursor")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[FleetNode]
    next_cursor: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[FleetNode, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CreateJoinTokenRequest(_message.Message):
    __slots__ = ("organization_id", "provider", "is_spot", "labels", "ttl_seconds", "description")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    IS_SPOT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    provider: str
    is_spot: bool
    labels: _containers.ScalarMap[str, str]
    ttl_seconds: int
    description: str
    def __init__(self, organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., is_spot: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., ttl_seconds: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("id", "token", "organization_id", "provider", "is_spot", "labels", "created_at", "expires_at", "used_at", "node_id", "revoked_at", "description", "state")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    IS_SPOT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USED_AT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    token: str
    organization_id: str
    provider: str
    is_spot: bool
    labels: _containers.ScalarMap[str, str]
    created_at: str
    expires_at: str
    used_at: str
    node_id: str
    revoked_at: str
    description: str
    state: str
    def __init__(self, id: _Optional[str] = ..., token: _Optional[str] = ..., organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., is_spot: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., used_at: _Optional[str] = ..., node_id: _Optional[str] = ..., revoked_at: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ListJoinTokensRequest(_message.Message):
    __slots__ = ("include_inactive",)
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    include_inactive: bool
    def __init__(self, include_inactive: _Optional[bool] = ...) -> None: ...

class ListJoinTokensResponse(_message.Message):
    __slots__ = ("join_tokens",)
    JOIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    join_tokens: _containers.RepeatedCompositeFieldContainer[JoinToken]
    def __init__(self, join_tokens: _Optional[_Iterable[_Union[JoinToken, _Mapping]]] = ...) -> None: ...

class RevokeJoinTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DecommissionNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class DecommissionNodeResponse(_message.Message):
    __slots__ = ("node_id", "revoked_credentials", "decommissioned_at")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    DECOMMISSIONED_AT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    revoked_credentials: int
    decommissioned_at: str
    def __init__(self, node_id: _Optional[str] = ..., revoked_credentials: _Optional[int] = ..., decommissioned_at: _Optional[str] = ...) -> None: ...

class RotateNodeCredentialRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeCredential(_message.Message):
    __slots__ = ("node_id", "credential", "expires_at", "previous_valid_until")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    credential: str
    expires_at: str
    previous_valid_until: str
    def __init__(self, node_id: _Optional[str] = ..., credential: _Optional[str] = ..., expires_at: _Optional[str] = ..., previous_valid_until: _Optional[str] = ...) -> None: ...

class AuthenticateNodeRequest(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: str
    def __init__(self, credential: _Optional[str] = ...) -> None: ...

class AuthenticateNodesRequest(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, credentials: _Optional[_Iterable[str]] = ...) -> None: ...

class AuthenticateNodesResponse(_message.Message):
    __slots__ = ("identities",)
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[NodeIdentity]
    def __init__(self, identities: _Optional[_Iterable[_Union[NodeIdentity, _Mapping]]] = ...) -> None: ...

class GetRecordKeysRequest(_message.Message):
    __slots__ = ("node_ids",)
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordKey(_message.Message):
    __slots__ = ("node_id", "public_key")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    public_key: bytes
    def __init__(self, node_id: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class GetRecordKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[RecordKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[RecordKey, _Mapping]]] = ...) -> None: ...

class NodeIdentity(_message.Message):
    __slots__ = ("node_id", "organization_id", "credential_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    organization_id: str
    credential_id: str
    def __init__(self, node_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., credential_id: _Optional[str] = ...) -> None: ...

class GpuType(_message.Message):
    __slots__ = ("name", "vendor", "model", "memory_mb", "reference_price_per_hour")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    name: str
    vendor: str
    model: str
    memory_mb: int
    reference_price_per_hour: str
    def __init__(self, name: _Optional[str] = ..., vendor: _Optional[str] = ..., model: _Optional[str] = ..., memory_mb: _Optional[int] = ..., reference_price_per_hour: _Optional[str] = ...) -> None: ...

class ListGpuTypesResponse(_message.Message):
    __slots__ = ("gpu_types",)
    GPU_TYPES_FIELD_NUMBER: _ClassVar[int]
    gpu_types: _containers.RepeatedCompositeFieldContainer[GpuType]
    def __init__(self, gpu_types: _Optional[_Iterable[_Union[GpuType, _Mapping]]] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("id", "name", "gpu_type", "node_id", "node_name", "index", "uuid", "memory_total_mb", "status", "in_use", "cost_per_hour", "provider", "is_spot", "dedicated", "last_active")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    IS_SPOT_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    gpu_type: str
    node_id: str
    node_name: str
    index: int
    uuid: str
    memory_total_mb: int
    status: str
    in_use: bool
    cost_per_hour: str
    provider: str
    is_spot: bool
    dedicated: bool
    last_active: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., gpu_type: _Optional[str] = ..., node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., index: _Optional[int] = ..., uuid: _Optional[str] = ..., memory_total_mb: _Optional[int] = ..., status: _Optional[str] = ..., in_use: _Optional[bool] = ..., cost_per_hour: _Optional[str] = ..., provider: _Optional[str] = ..., is_spot: _Optional[bool] = ..., dedicated: _Optional[bool] = ..., last_active: _Optional[str] = ...) -> None: ...

class ListGpusRequest(_message.Message):
    __slots__ = ("status", "gpu_type")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    status: str
    gpu_type: str
    def __init__(self, status: _Optional[str] = ..., gpu_type: _Optional[str] = ...) -> None: ...

class ListGpusResponse(_message.Message):
    __slots__ = ("gpus",)
    GPUS_FIELD_NUMBER: _ClassVar[int]
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    def __init__(self, gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "hostname", "provider", "is_spot", "status", "last_heartbeat", "cpu_cores", "ram_mb", "labels", "dedicated", "registered_at", "gpus")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    IS_SPOT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostname: str
    provider: str
    is_spot: bool
    status: str
    last_heartbeat: str
    cpu_cores: int
    ram_mb: int
    labels: _containers.ScalarMap[str, str]
    dedicated: bool
    registered_at: str
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    def __init__(self, id: _Optional[str] = ..., hostname: _Optional[str] = ..., provider: _Optional[str] = ..., is_spot: _Optional[bool] = ..., status: _Optional[str] = ..., last_heartbeat: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., dedicated: _Optional[bool] = ..., registered_at: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("limit", "cursor")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    limit: int
    cursor: str
    def __init__(self, limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_cursor")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_cursor: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("index", "uuid", "model", "memory_total_mb")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    model: str
    memory_total_mb: int
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., model: _Optional[str] = ..., memory_total_mb: _Optional[int] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("hostname", "provider", "gpu_backend", "driver_version", "gpus", "organization_id", "is_spot", "agent_version", "cpu_cores", "ram_mb", "labels", "record_public_key")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    GPU_BACKEND_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    IS_SPOT_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RECORD_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    provider: str
    gpu_backend: str
    driver_version: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuInfo]
    organization_id: str
    is_spot: bool
    agent_version: str
    cpu_cores: int
    ram_mb: int
    labels: _containers.ScalarMap[str, str]
    record_public_key: bytes
    def __init__(self, hostname: _Optional[str] = ..., provider: _Optional[str] = ..., gpu_backend: _Optional[str] = ..., driver_version: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuInfo, _Mapping]]] = ..., organization_id: _Optional[str] = ..., is_spot: _Optional[bool] = ..., agent_version: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., record_public_key: _Optional[bytes] = ...) -> None: ...

class RegisteredGpu(_message.Message):
    __slots__ = ("index", "gpu_id", "gpu_type", "cost_per_hour", "name")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    index: int
    gpu_id: str
    gpu_type: str
    cost_per_hour: str
    name: str
    def __init__(self, index: _Optional[int] = ..., gpu_id: _Optional[str] = ..., gpu_type: _Optional[str] = ..., cost_per_hour: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("node_id", "gpus", "heartbeat_interval_seconds", "node_credential")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NODE_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    gpus: _containers.RepeatedCompositeFieldContainer[RegisteredGpu]
    heartbeat_interval_seconds: int
    node_credential: NodeCredential
    def __init__(self, node_id: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[RegisteredGpu, _Mapping]]] = ..., heartbeat_interval_seconds: _Optional[int] = ..., node_credential: _Optional[_Union[NodeCredential, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "unhealthy_gpu_ids")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    unhealthy_gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., unhealthy_gpu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...
