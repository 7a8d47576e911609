"""Operating the platform: what a job is doing (its context), alerts, data-quality
checks, health and metrics."""
