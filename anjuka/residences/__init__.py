"""Residences: arrival and departure (人来登记, 人走注销)."""
