"""The data plane: attach client, state machine, executor, drivers, value generators.

Never imports ``controller`` or ``tui`` (checked by tests/test_import_hygiene.py).
"""
