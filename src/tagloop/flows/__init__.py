"""Flows: tags and events turned into action (definitions, triggers, the durable runner and
the actions it runs)."""
