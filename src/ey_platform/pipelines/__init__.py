"""Pipelines compose the stages; they depend on interfaces, never on a backend or an SDK."""
