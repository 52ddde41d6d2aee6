"""Composition root: wires the database-backed unit of work and the operator token into the handlers.

Tests build the same :class:`IdentityApp` over their own database (or an in-memory unit of work)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.db import Database

from .adapters.repository import sql_unit_of_work
from .config import IdentitySettings
from .service_layer.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class IdentityApp:
    uow: UnitOfWorkFactory
    admin_token: str = field(repr=False)


def bootstrap(settings: IdentitySettings, db: Database, uow: UnitOfWorkFactory | None = None) -> IdentityApp:
    return IdentityApp(uow=uow or sql_unit_of_work(db), admin_token=settings.admin_token.get_secret_value())
