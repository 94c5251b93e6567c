"""Pieces every domain shares: errors, API base, keys, security, time."""
