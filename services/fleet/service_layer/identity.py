"""Use cases of node identity: join tokens (operator), node credentials (agents), decommission.

Which node an agent call is for comes from the secret it presents, never from the request: a join
token admits the node it was created for (found by the hostname the agent registers, or new), a node
credential is bound to one node. What the node is (organization, provider, spot, fixed labels) comes
from its join token, kept on the node row, never from what the agent asserts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from shared import node_identity
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from ..domain.identity import (
    JoinToken,
    NodeCredential,
    NodeProfile,
    authenticated,
    join_token_profile,
    join_token_ttl,
)
from ..domain.model import Node, NodeRegistration, check_labels
from . import audit, commands
from .unit_of_work import FleetUnitOfWork

if TYPE_CHECKING:
    from .handlers import Dependencies


@dataclass(frozen=True)
class IssuedCredential:
    node_id: UUID
    secret: str  # told once, never stored
    expires_at: datetime | None = None
    previous_valid_until: datetime | None = None


@dataclass(frozen=True)
class CreatedJoinToken:
    token: JoinToken
    secret: str  # told once, never stored


@dataclass(frozen=True)
class Admitted:
    """Who a registration is for: the node (None: a new one) and what it is."""

    node: Node | None
    profile: NodeProfile
    join_token: JoinToken | None = None  # set: spend it and issue a credential


async def caller(tx: FleetUnitOfWork, credential: str, now: datetime) -> NodeCredential:
    """The valid node credential ``credential`` is; UNAUTHENTICATED for anything else (a malformed
    string is refused without a look-up)."""
    if not node_identity.is_credential(credential):
        raise Unauthenticated("a node credential is required (authorization: Bearer gpfn_...)")
    return authenticated(await tx.credential_by_hash(node_identity.digest(credential)), now)


def _profile_of(node: Node) -> NodeProfile:
    return NodeProfile(node.organization_id, node.provider, node.is_spot, dict(node.fixed_labels))


async def _live_credentials(tx: FleetUnitOfWork, node_id: UUID, now: datetime) -> list[NodeCredential]:
    return [c for c in await tx.credentials_of_node(node_id) if c.valid(now)]


async def admit(tx: FleetUnitOfWork, secret: str, hostname: str, now: datetime) -> Admitted:
    if node_identity.is_join_token(secret):
        token = await tx.join_token_by_hash(node_identity.digest(secret))
        if token is None or token.state(now) != "active":
            raise Unauthenticated("invalid join token")
        existing = await tx.node_by_hostname(hostname)
        if existing is not None and await _live_credentials(tx, existing.id, now):
            # A join token admits a new node or a decommissioned one, never takes over a live identity.
            raise PermissionDenied("a node with this hostname already has an identity: decommission it first")
        return Admitted(existing, token.profile, token)
    credential = await caller(tx, secret, now)
    node = await tx.node(credential.node_id)
    if node is None or node.decommissioned_at is not None:
        raise Unauthenticated("invalid node credential")
    if node.hostname != hostname:
        raise PermissionDenied("this credential belongs to another node (hostname)", field="hostname")
    return Admitted(node, _profile_of(node))


def as_profiled(reg: NodeRegistration, profile: NodeProfile) -> NodeRegistration:
    """The registration with what the node is taken from its profile, and the profile's labels over the
    agent's."""
    return replace(
        reg,
        organization_id=profile.organization_id,
        provider=profile.provider,
        is_spot=profile.is_spot,
        labels=check_labels({**reg.labels, **profile.labels}),
    )


async def _issue(tx: FleetUnitOfWork, node_id: UUID, now: datetime) -> tuple[NodeCredential, str]:
    secret = node_identity.new_credential()
    credential = NodeCredential.issue(node_id, node_identity.digest(secret), now)
    await tx.save_credential(credential)
    return credential, secret


async def complete(
    tx: FleetUnitOfWork, admitted: Admitted, node_id: UUID, now: datetime
) -> IssuedCredential | None:
    """After the node is saved: spend the join token and issue the node's credential."""
    if admitted.join_token is None:
        return None
    admitted.join_token.use(node_id, now)
    await tx.save_join_token(admitted.join_token)
    _, secret = await _issue(tx, node_id, now)
    return IssuedCredential(node_id, secret)


async def authenticate_node(cmd: commands.AuthenticateNode, deps: Dependencies) -> Node:
    async with deps.uow(system=True) as tx:
        credential = await caller(tx, cmd.credential, await tx.now())
        node = await tx.node(credential.node_id)
    if node is None or node.decommissioned_at is not None:
        raise Unauthenticated("invalid node credential")
    return node


MAX_BATCH_AUTHENTICATIONS = 1000


async def authenticate_nodes(cmd: commands.AuthenticateNodes, deps: Dependencies) -> list[Node | None]:
    """:func:`authenticate_node` for each of ``cmd.credentials``, in order, in one read: the node, or
    None where the credential is not valid now (malformed, unknown, expired, revoked, or its node
    decommissioned)."""
    if not 1 <= len(cmd.credentials) <= MAX_BATCH_AUTHENTICATIONS:
        raise InvalidArgument(
            f"between 1 and {MAX_BATCH_AUTHENTICATIONS} credentials per call", field="credentials"
        )
    digests = [node_identity.digest(c) if node_identity.is_credential(c) else None for c in cmd.credentials]
    wanted = sorted({d for d in digests if d is not None})
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        found = await tx.credentials_with_nodes(wanted)
    valid = {
        credential.secret_hash: node
        for credential, node in found
        if credential.valid(now) and node.decommissioned_at is None
    }
    return [valid.get(d) if d is not None else None for d in digests]


async def rotate_credential(cmd: commands.RotateNodeCredential, deps: Dependencies) -> IssuedCredential:
    """A new credential for the caller's node; the presented one keeps working for the overlap."""
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        current = await caller(tx, cmd.credential, now)
        until = current.retire(now, deps.credential_overlap)
        await tx.save_credential(current)
        _, secret = await _issue(tx, current.node_id, now)
        node = await tx.node(current.node_id)
        if node is not None:
            await tx.record_audit(
                audit.node_change(
                    "node.rotate_credential",
                    node,
                    None,
                    call=audit.by_node(node.id),
                    extra={"previous_valid_until": until},
                )
            )
    return IssuedCredential(current.node_id, secret, previous_valid_until=until)


async def create_join_token(cmd: commands.CreateJoinToken, deps: Dependencies) -> CreatedJoinToken:
    profile = join_token_profile(cmd.organization_id, cmd.provider, cmd.is_spot, cmd.labels)
    ttl = join_token_ttl(cmd.ttl_seconds)
    secret = node_identity.new_join_token()
    async with deps.uow(system=True) as tx:
        token = JoinToken.create(node_identity.digest(secret), profile, await tx.now(), ttl, cmd.description)
        await tx.save_join_token(token)
        await tx.record_audit(audit.join_token_change("join_token.create", token, None))
    return CreatedJoinToken(token, secret)


async def list_join_tokens(
    cmd: commands.ListJoinTokens, deps: Dependencies
) -> tuple[datetime, list[JoinToken]]:
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        return now, await tx.join_tokens(active_at=None if cmd.include_inactive else now)


async def revoke_join_token(cmd: commands.RevokeJoinToken, deps: Dependencies) -> tuple[datetime, JoinToken]:
    async with deps.uow(system=True) as tx:
        token = await tx.join_token(cmd.token_id)
        if token is None:
            raise NotFound("no such join token")
        now = await tx.now()
        before = audit.join_token_state(token)
        if token.revoke(now):
            await tx.save_join_token(token)
            await tx.record_audit(audit.join_token_change("join_token.revoke", token, before))
    return now, token


@dataclass(frozen=True)
class Decommissioned:
    node_id: UUID
    revoked_credentials: int
    at: datetime


async def decommission_node(cmd: commands.DecommissionNode, deps: Dependencies) -> Decommissioned:
    """Revoke every credential of the node, take it and its GPUs offline (published: the scheduler
    requeues what ran there), and release its GPU UUIDs to whichever node an operator admits next."""
    async with deps.uow(system=True) as tx:
        node = await tx.node(cmd.node_id)
        if node is None:
            raise NotFound("no such node")
        now = await tx.now()
        before = audit.node_state(node)
        revoked = 0
        for credential in await tx.credentials_of_node(node.id):
            if credential.revoke(now):
                await tx.save_credential(credential)
                revoked += 1
        if node.decommissioned_at is None:
            node.decommissioned_at = now
        node.status = "offline"
        await tx.save_node(node)
        await tx.record_audit(
            audit.node_change("node.decommission", node, before, extra={"revoked_credentials": revoked})
        )
        for gpu in await tx.gpus_of_node(node.id):
            if gpu.mark_offline(now, f"node {node.hostname} decommissioned"):
                await tx.save_gpu(gpu)
    return Decommissioned(node.id, revoked, node.decommissioned_at or now)
