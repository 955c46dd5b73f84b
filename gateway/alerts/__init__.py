"""Budgets and the operator alert stream: the rules, the budget tracker and the per-minute
stage that evaluates them. The events are stored in the ledger's alerts table
(gateway/ledger/alerts_table.py) and published by gateway/sinks/alerts_mqtt.py; the pipeline
(gateway/pipeline.py) wires the three. See docs/alerts.md for the event schema and the topics.
"""
