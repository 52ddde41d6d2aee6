"""The agent's rules as plain Python: what to do with assignments, how to keep an output tail."""
