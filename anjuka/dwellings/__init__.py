"""Estates and rental dwellings, and their capacity."""
