"""Wakes the scheduling loop early: after a submit, a finished job, or an inventory change."""

from shared.wakeup import Wakeup

__all__ = ["Wakeup"]
