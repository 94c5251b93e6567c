"""Anjuka desk card reader: on-card record format, card protocols, daemon and simulator.

This package never imports Flask or the ``anjuka`` web application; the
server imports :mod:`cardreader.record` to sign what the daemon writes.
"""
