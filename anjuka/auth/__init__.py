"""Accounts, roles, scopes, tokens and the default-deny gate."""
