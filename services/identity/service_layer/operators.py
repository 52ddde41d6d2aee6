"""Operator handlers: who an operator token belongs to, and named operators (create, list, revoke).

Every operator call runs in the system scope (operators act across organizations). Any operator may
manage named operators: they are peers, and each row records who created and who revoked it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import Conflict, NotFound, Unauthenticated

from ..domain import operator as op
from ..domain.operator import OPERATOR, NamedOperator, OperatorPrincipal
from . import commands
from .dependencies import Dependencies

OPERATOR_REQUIRED = "a valid operator token is required"


async def resolve_operator(presented: str | None, deps: Dependencies) -> OperatorPrincipal | None:
    """The operator ``presented`` is the token of, or None. The bootstrap token is compared in constant
    time; a named operator's is found by its hash (no stored secret is compared)."""
    if not presented:
        return None
    if deps.operator.admits(presented):
        return OPERATOR
    if not op.token_shaped(presented):
        return None
    async with deps.uow(system=True) as tx:
        found = await tx.operator_by_token(op.hash_token(presented))
    return found.principal() if found is not None and found.active else None


async def require_operator(presented: str | None, deps: Dependencies) -> OperatorPrincipal:
    found = await resolve_operator(presented, deps)
    if found is None:
        raise Unauthenticated(OPERATOR_REQUIRED)
    return found


@dataclass(frozen=True)
class CreatedOperator:
    operator: NamedOperator
    token: str


async def create_operator(cmd: commands.CreateOperator, deps: Dependencies) -> CreatedOperator:
    by = await require_operator(cmd.operator_token, deps)
    name = op.operator_name(cmd.name)
    async with deps.uow(system=True) as tx:
        created, token = op.issue_operator(name, by.name, await tx.now())
        if not await tx.add_operator(created):
            raise Conflict(f"an operator named {name} exists already", field="name")
    return CreatedOperator(created, token)


async def list_operators(cmd: commands.ListOperators, deps: Dependencies) -> list[NamedOperator]:
    await require_operator(cmd.operator_token, deps)
    async with deps.uow(system=True) as tx:
        return await tx.operators()


async def revoke_operator(cmd: commands.RevokeOperator, deps: Dependencies) -> NamedOperator:
    """Revoking a revoked operator changes nothing. The bootstrap operator is no row: it goes by
    changing GPUFLEET_ADMIN_TOKEN."""
    by = await require_operator(cmd.operator_token, deps)
    async with deps.uow(system=True) as tx:
        found = await tx.named_operator(cmd.operator_id) if cmd.operator_id else None
        if found is None:
            raise NotFound("operator not found", field="id")
        if not found.active:
            return found
        found = found.revoked(by.name, await tx.now())
        await tx.save_operator_revocation(found)
    return found


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.CreateOperator: create_operator,
    commands.ListOperators: list_operators,
    commands.RevokeOperator: revoke_operator,
}
