"""Patrol verification (查验): card and document checks, inspections, the offline bundle."""
