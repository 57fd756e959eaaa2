"""Findings to people: the outbox's delivery pass and the sinks it delivers to."""
