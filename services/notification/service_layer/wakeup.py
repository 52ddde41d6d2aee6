"""Wakes the delivery worker early: after the consumer committed new deliveries."""

from shared.wakeup import Wakeup

__all__ = ["Wakeup"]
