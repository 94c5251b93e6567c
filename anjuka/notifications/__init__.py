"""Notifications: alerts pushed to webhook subscribers after commit."""
