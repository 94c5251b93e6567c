"""Transfers: a move across desks, completed by the desk that records the departure."""
