"""Budgets and the operator alert stream: rules, the per-minute stage, the store, the MQTT sink.

See docs/alerts.md for the event schema and the topics.
"""
