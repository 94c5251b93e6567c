"""Persons: identity documents, encrypted at rest, masked in responses."""
