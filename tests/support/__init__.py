"""Helpers that several test modules share: running sources, gateway child processes, stand-ins.

A test module imports helpers from here, from tests/factories.py (minute results, settings,
examples) or from tests/services/ (the real peers), never from another test module.
"""
