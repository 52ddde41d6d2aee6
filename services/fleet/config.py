"""Fleet settings: ``GPUFLEET_FLEET_*`` plus the shared Kafka and identity-client pieces. Agents present
node credentials fleet issued itself (docs/agent-identity.md): no shared agent secret is configured."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class FleetSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    fleet_database_url: str
    fleet_grpc_listen: str = "127.0.0.1:15052"
    # Node agents' NodeRegistryService (register, heartbeat, rotate; AuthenticateNode for the scheduler)
    # on a listener of its own, e.g. "0.0.0.0:15062": then only there, and FleetService/NodeAdminService
    # only on fleet_grpc_listen, so that the node network can be firewalled apart from the tenant one.
    # Empty: one listener serves both, as before (logged at start-up).
    fleet_agent_grpc_listen: str = ""
    # Told to agents at registration; the node timeout must leave room for a few missed beats.
    fleet_heartbeat_interval_seconds: int = Field(default=5, ge=1, le=3600)
    fleet_node_timeout_seconds: int = Field(default=30, ge=1)
    # Hourly price of a GPU whose model is not in the catalog (registered as type "unknown").
    fleet_unknown_gpu_price_per_hour: Decimal = Field(
        default=Decimal("0"), ge=0, max_digits=10, decimal_places=4
    )
    # How often the offline sweep looks for silent nodes.
    fleet_sweep_interval_seconds: float = Field(default=2.0, gt=0)
    # How long a node credential superseded by RotateNodeCredential keeps working (in-flight calls,
    # the agent's other client switching over).
    fleet_credential_overlap_seconds: int = Field(default=60, ge=1, le=3600)
