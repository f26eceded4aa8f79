"""The control plane: API servicers, run lifecycle, orchestration, metrics merge, CLI.

Never imports ``textual`` (checked by tests/test_import_hygiene.py).
"""
