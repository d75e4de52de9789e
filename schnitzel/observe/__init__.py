"""Observability helpers: structured logs (metrics and health live in `schnitzel.runtime`)."""
