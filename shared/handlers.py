"""The one way a service runs a command: a registry of ``(command, deps)`` handlers, dispatched on type.

Each service keeps its registry in ``service_layer/handlers.py`` (``HANDLERS``) and exposes
``handle(cmd, deps)``; entrypoints only build commands and call it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Handler = Callable[[Any, Any], Awaitable[Any]]


async def dispatch(handlers: Mapping[type, Handler], cmd: object, deps: object) -> Any:
    """Run the handler registered for ``cmd``'s type; an unregistered command is a programming error."""
    try:
        handler = handlers[type(cmd)]
    except KeyError:
        raise TypeError(f"no handler for {type(cmd).__name__}") from None
    return await handler(cmd, deps)
