"""snowload: distributed load generator and benchmark harness for SQL databases.

This package holds what the controller, the workers and the TUI share: the generated
wire contract (`snowload.v1`), the workload file model, durations and histogram helpers.
"""

__version__ = "0.1.0"
