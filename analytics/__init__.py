"""Pure calculation core of emgate: numpy arrays and plain parameters in, arrays or frozen dataclasses out.

Nothing in this package does I/O, reads the clock, logs or awaits. Times are float64 epoch seconds (UTC).

Modules:
    units         conversion constants and helpers (domain reference 5.5)
    aggregate     samples -> minute amounts: rates, counters, interval totals, instant stats (5.1, 5.3-5.4)
    substitution  minute coverage, quality codes and missing-data rules (5.1, 5.2)
    emissions     activity data x factors -> tCO2 (sections 2.1-2.6)
    factors       the factor table: defaults, site overrides and their validity (section 3)
"""
