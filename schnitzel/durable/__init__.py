"""Durable delivery: disk-backed inboxes on SQLite (docs/contracts/delivery.md)."""
