"""The agent's edges: GPU backends, gRPC clients of fleet and scheduler, processes, Kafka, state files."""
