"""Billing: the cost of every job from the price of the GPUs it held, per second."""
