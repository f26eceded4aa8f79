"""Fixtures shared across test modules.

The snowflake connector fixes where connections.toml lives (``$SNOWFLAKE_HOME``) when it
is first imported, so the test session points it at a private directory before any test
module imports it; tests/fakesnow.py writes the file there.
"""

import os
import tempfile

os.environ["SNOWFLAKE_HOME"] = tempfile.mkdtemp(prefix="snowload-sfhome-")

from hypothesis import settings

from tests.cluster import controller, traces, workers
from tests.fakesnow import fakesnow_port, snowflake_home
from tests.pg import pg

# scripts/mutation.sh: every mutant meets the same examples, so whether one is killed does
# not depend on the draw (a kill that needs a rare example is an @example, not luck)
settings.register_profile("mutation", derandomize=True, database=None)
if os.environ.get("SNOWLOAD_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["SNOWLOAD_HYPOTHESIS_PROFILE"])

__all__ = ["controller", "fakesnow_port", "pg", "snowflake_home", "traces", "workers"]
