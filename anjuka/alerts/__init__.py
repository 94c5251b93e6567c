"""Alerts (预警): what the registry raises by itself, and their lifecycle."""
