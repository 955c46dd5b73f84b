"""The kernel every layer may use: what flows between stages (model), the error tree, the clock,
component health, the signal table, and the process's memory settings. It imports nothing from
the rest of the gateway at run time."""
