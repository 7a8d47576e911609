"""The raw lake: date-partitioned JSONL objects, written once, never modified."""
