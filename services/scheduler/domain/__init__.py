"""The scheduler's domain: jobs and their life cycle, submission rules, placement. No I/O here."""
