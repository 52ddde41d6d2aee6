"""The scheduler: job queue, placement onto GPUs, and the job life cycle reported by node agents."""
