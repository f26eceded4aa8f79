"""Locust's side of bench/generator_efficiency.py: ``SELECT 1`` on in-memory SQLite.

A plain ``User`` (not ``HttpUser``): each simulated user opens its own sqlite3
connection (``:memory:``, so one private database per user) and every task runs
``SELECT 1``, reading the result, and fires Locust's ``request`` event with the
response time, exactly as a custom Locust client is meant to.

Two ways to run it:

    # Locust's own CLI (the numbers are in /tmp/locust_select1_stats.csv)
    locust -f bench/locustfile_select1.py --headless -u 16 -r 16 -t 10s \
        --csv /tmp/locust_select1 --only-summary

    # Locust's Python API, as bench/generator_efficiency.py does: counts only the
    # steady state (after all users are spawned) and prints one JSON line
    python bench/locustfile_select1.py --users 16 --seconds 10

This file imports locust at the top: locust monkey-patches the standard library with
gevent when imported, so it must run in its own process (never import it from the
other benchmarks).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sqlite3
import sys
import time

import gevent
from locust import User, constant, events, task
from locust.env import Environment


class SqliteUser(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.conn = sqlite3.connect(":memory:")

    def on_stop(self) -> None:
        self.conn.close()

    @task
    def select1(self) -> None:
        start = time.perf_counter()
        exception: Exception | None = None
        try:
            self.conn.execute("SELECT 1").fetchall()
        except sqlite3.Error as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="sqlite",
            name="select1",
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0,
            exception=exception,
            context={},
        )


def run(users: int, seconds: float) -> dict[str, object]:
    env = Environment(user_classes=[SqliteUser], events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    # count only the steady state: every user spawned and running
    assert runner.spawning_greenlet is not None
    runner.spawning_greenlet.join()
    while runner.user_count < users:
        gevent.sleep(0.01)
    env.stats.reset_all()
    t0 = time.perf_counter()
    gevent.sleep(seconds)
    requests = env.stats.total.num_requests
    failures = env.stats.total.num_failures
    elapsed = time.perf_counter() - t0
    runner.quit()
    return {
        "method": "locust",
        "queries": requests,
        "failures": failures,
        "elapsed_s": elapsed,
        "qps": requests / elapsed,
        "users": users,
        "locust_version": _locust_version(),
    }


def _locust_version() -> str:
    import locust

    return str(locust.__version__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logging.getLogger("locust").setLevel(logging.WARNING)
    result = run(args.users, args.seconds)
    result["python"] = platform.python_version()
    result["pid"] = os.getpid()
    print(json.dumps(result))
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
