"""The agent's use cases: the control loop, the report queue, metric sampling."""
