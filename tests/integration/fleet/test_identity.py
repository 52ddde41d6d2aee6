"""Node identity over gRPC and PostgreSQL: join tokens, node credentials, GPU claims, rotation,
decommission (docs/agent-identity.md)."""

from __future__ import annotations

from uuid import uuid4

import grpc
import pytest
from gpufleet.v1 import fleet_pb2
from sqlalchemy import text

from shared import node_identity
from shared.grpc import with_key

from .conftest import OPERATOR, Fleet
from .test_registry import node_request

pytestmark = pytest.mark.integration


async def _refused(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def _node_row(fleet: Fleet, node_id: str):  # type: ignore[no-untyped-def]
    async with fleet.db.transaction(system=True) as s:
        return (
            await s.execute(
                text("SELECT organization_id, provider, is_spot, labels, status FROM nodes WHERE id = :n"),
                {"n": node_id},
            )
        ).one()


async def _batch(fleet: Fleet, *credentials: str) -> list[str]:
    """AuthenticateNodes: the node id each credential is valid for ("" where it is not)."""
    answer = await fleet.registry.AuthenticateNodes(
        fleet_pb2.AuthenticateNodesRequest(credentials=credentials)
    )
    return [identity.node_id for identity in answer.identities]


async def test_a_join_token_admits_one_node_once_and_fixes_what_it_is(fleet: Fleet) -> None:
    org = uuid4()
    token = await fleet.join_token(
        organization_id=str(org), provider="aws", is_spot=True, labels={"rack": "r9"}
    )
    # What the agent asserts is ignored: organization, provider, spot and the fixed label come from the token.
    req = node_request(org=uuid4(), provider="on-prem", is_spot=False, labels={"rack": "mine", "zone": "z1"})
    resp = await fleet.registry.RegisterNode(req, metadata=with_key(token))
    row = await _node_row(fleet, resp.node_id)
    assert (row.organization_id, row.provider, row.is_spot) == (org, "aws", True)
    assert row.labels == {"rack": "r9", "zone": "z1"}
    credential = resp.node_credential.credential
    assert credential.startswith("gpfn_") and resp.node_credential.node_id == resp.node_id

    # Once only: the same token again (another host) is refused and creates nothing.
    other = node_request()
    await _refused(
        fleet.registry.RegisterNode(other, metadata=with_key(token)), grpc.StatusCode.UNAUTHENTICATED
    )
    async with fleet.db.transaction(system=True) as s:
        made = (
            await s.execute(text("SELECT count(*) FROM nodes WHERE hostname = :h"), {"h": other.hostname})
        ).scalar()
        stored = (
            await s.execute(
                text("SELECT count(*) FROM node_credentials WHERE node_id = :n"), {"n": resp.node_id}
            )
        ).scalar()
        secrets = (
            (
                await s.execute(
                    text(
                        "SELECT token_hash::text || secret_hash::text FROM join_tokens, node_credentials WHERE node_credentials.node_id = :n"
                    ),
                    {"n": resp.node_id},
                )
            )
            .scalars()
            .all()
        )
    assert made == 0 and stored == 1
    assert all(token not in v and credential not in v for v in secrets)  # only hashes are kept

    listed = await fleet.admin.ListJoinTokens(
        fleet_pb2.ListJoinTokensRequest(include_inactive=True), metadata=OPERATOR
    )
    mine = next(t for t in listed.join_tokens if t.node_id == resp.node_id)
    assert (mine.state, mine.token, mine.organization_id) == ("used", "", str(org))

    # Later calls present the credential; the node stays what the token said.
    again = await fleet.registry.RegisterNode(req, metadata=with_key(credential))
    assert again.node_id == resp.node_id and not again.HasField("node_credential")
    assert (await _node_row(fleet, resp.node_id)).provider == "aws"


async def test_expired_and_revoked_join_tokens_are_refused(fleet: Fleet) -> None:
    token = await fleet.join_token(ttl_seconds=60)
    async with fleet.db.transaction(system=True) as s:  # an hour later
        await s.execute(
            text(
                "UPDATE join_tokens SET created_at = now() - interval '2 hours', "
                "expires_at = now() - interval '1 hour' WHERE token_hash = :h"
            ),
            {"h": node_identity.digest(token)},
        )
    await _refused(
        fleet.registry.RegisterNode(node_request(), metadata=with_key(token)), grpc.StatusCode.UNAUTHENTICATED
    )
    created = await fleet.admin.CreateJoinToken(
        fleet_pb2.CreateJoinTokenRequest(description="revoke me"), metadata=OPERATOR
    )
    revoked = await fleet.admin.RevokeJoinToken(
        fleet_pb2.RevokeJoinTokenRequest(id=created.id), metadata=OPERATOR
    )
    assert revoked.state == "revoked" and revoked.token == ""
    await _refused(
        fleet.registry.RegisterNode(node_request(), metadata=with_key(created.token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_join_token_admin_calls_need_the_operator(fleet: Fleet) -> None:
    key = fleet.identity.new_key()
    await _refused(
        fleet.admin.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest(), metadata=with_key(key)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await _refused(
        fleet.admin.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest()), grpc.StatusCode.UNAUTHENTICATED
    )
    err = await _refused(
        fleet.admin.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest(ttl_seconds=10), metadata=OPERATOR),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert dict(err.trailing_metadata() or ()).get("gpufleet-error-field") == "ttl_seconds"


async def test_a_credential_is_bound_to_its_node(fleet: Fleet) -> None:
    a, b = await fleet.join(node_request()), await fleet.join(node_request())
    # B's credential cannot heartbeat for A, nor register as A's host.
    await _refused(
        fleet.registry.Heartbeat(
            fleet_pb2.HeartbeatRequest(node_id=a.node_id), metadata=fleet.node(b.node_id)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    async with fleet.db.transaction(system=True) as s:
        host_a = (
            await s.execute(text("SELECT hostname FROM nodes WHERE id = :n"), {"n": a.node_id})
        ).scalar()
    await _refused(
        fleet.registry.RegisterNode(node_request(hostname=host_a), metadata=fleet.node(b.node_id)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # A join token cannot take over a node that has a live identity.
    await _refused(
        fleet.registry.RegisterNode(
            node_request(hostname=host_a), metadata=with_key(await fleet.join_token())
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_a_gpu_uuid_of_another_node_is_refused_until_an_operator_decommissions_it(fleet: Fleet) -> None:
    first = await fleet.join(node_request(models=("NVIDIA L4",)))
    async with fleet.db.transaction(system=True) as s:
        uuid = (
            await s.execute(text("SELECT uuid FROM gpu_resources WHERE node_id = :n"), {"n": first.node_id})
        ).scalar()
    thief = node_request(models=("NVIDIA L4",))
    thief.gpus[0].uuid = uuid
    token = await fleet.join_token()
    err = await _refused(
        fleet.registry.RegisterNode(thief, metadata=with_key(token)), grpc.StatusCode.PERMISSION_DENIED
    )
    assert dict(err.trailing_metadata() or ()).get("gpufleet-error-field") == "gpus"
    async with fleet.db.transaction(system=True) as s:
        owner = (
            await s.execute(text("SELECT node_id FROM gpu_resources WHERE uuid = :u"), {"u": uuid})
        ).scalar()
        made = (
            await s.execute(text("SELECT count(*) FROM nodes WHERE hostname = :h"), {"h": thief.hostname})
        ).scalar()
    assert str(owner) == first.node_id and made == 0  # nothing changed; the token is not spent either

    done = await fleet.admin.DecommissionNode(
        fleet_pb2.DecommissionNodeRequest(node_id=first.node_id), metadata=OPERATOR
    )
    assert done.revoked_credentials == 1
    moved = await fleet.registry.RegisterNode(thief, metadata=with_key(token))
    assert moved.gpus[0].gpu_id == first.gpus[0].gpu_id  # the card kept its id, now on the new node


async def test_rotation_overlap_and_revocation_on_decommission(fleet: Fleet) -> None:
    node = await fleet.join(node_request())
    old = fleet.credentials[node.node_id]
    rotated = await fleet.registry.RotateNodeCredential(
        fleet_pb2.RotateNodeCredentialRequest(), metadata=with_key(old)
    )
    new = rotated.credential
    assert new != old and rotated.node_id == node.node_id and rotated.previous_valid_until
    beat = fleet_pb2.HeartbeatRequest(node_id=node.node_id)
    for credential in (old, new):  # the overlap: both work
        assert (await fleet.registry.Heartbeat(beat, metadata=with_key(credential))).known
    # The batch form answers in order, an empty identity for anything not valid.
    assert await _batch(fleet, old, "gpfn_not-a-credential", new, "nonsense") == [
        node.node_id,
        "",
        node.node_id,
        "",
    ]
    async with fleet.db.transaction(system=True) as s:  # the overlap ends
        await s.execute(
            text(
                "UPDATE node_credentials SET expires_at = now() - interval '1 second' WHERE node_id = :n AND expires_at IS NOT NULL"
            ),
            {"n": node.node_id},
        )
    await _refused(fleet.registry.Heartbeat(beat, metadata=with_key(old)), grpc.StatusCode.UNAUTHENTICATED)
    who = await fleet.registry.AuthenticateNode(fleet_pb2.AuthenticateNodeRequest(credential=new))
    assert who.node_id == node.node_id
    assert await _batch(fleet, new, old) == [node.node_id, ""]  # past its overlap

    await fleet.admin.DecommissionNode(
        fleet_pb2.DecommissionNodeRequest(node_id=node.node_id), metadata=OPERATOR
    )
    await _refused(fleet.registry.Heartbeat(beat, metadata=with_key(new)), grpc.StatusCode.UNAUTHENTICATED)
    await _refused(
        fleet.registry.AuthenticateNode(fleet_pb2.AuthenticateNodeRequest(credential=new)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert await _batch(fleet, new) == [""]  # its node decommissioned
    for size in (0, 1001):
        await _refused(
            fleet.registry.AuthenticateNodes(fleet_pb2.AuthenticateNodesRequest(credentials=[new] * size)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    async with fleet.db.transaction(system=True) as s:
        statuses = set(
            (
                await s.execute(
                    text("SELECT status FROM gpu_resources WHERE node_id = :n"), {"n": node.node_id}
                )
            ).scalars()
        )
    assert statuses == {"offline"} and (await _node_row(fleet, node.node_id)).status == "offline"


async def test_a_nodes_record_key_is_kept_per_registration_and_served_until_decommission(
    fleet: Fleet,
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.record_signing import RecordSigner

    first, second = (RecordSigner(Ed25519PrivateKey.generate()).public_key for _ in range(2))
    req = node_request()
    req.record_public_key = first
    node = await fleet.join(req)
    keyless = await fleet.join(node_request())  # an agent that does not sign

    async def served(*node_ids: str) -> dict[str, bytes]:
        answer = await fleet.registry.GetRecordKeys(fleet_pb2.GetRecordKeysRequest(node_ids=node_ids))
        return {k.node_id: k.public_key for k in answer.keys}

    assert await served(node.node_id, keyless.node_id, str(uuid4())) == {node.node_id: first}
    # A re-registration (its credential) replaces the key: an agent whose state folder lost its key.
    req.record_public_key = second
    await fleet.registry.RegisterNode(req, metadata=with_key(node.node_credential.credential))
    assert await served(node.node_id) == {node.node_id: second}

    bad = node_request()
    bad.record_public_key = b"\x01" * 31
    err = await _refused(
        fleet.registry.RegisterNode(bad, metadata=with_key(await fleet.join_token(provider="on-prem"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "record_public_key" in err.details()
    await _refused(
        fleet.registry.GetRecordKeys(fleet_pb2.GetRecordKeysRequest(node_ids=["not-a-uuid"])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await _refused(
        fleet.registry.GetRecordKeys(fleet_pb2.GetRecordKeysRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )

    await fleet.admin.DecommissionNode(
        fleet_pb2.DecommissionNodeRequest(node_id=node.node_id), metadata=OPERATOR
    )
    assert await served(node.node_id) == {}
