"""Fixtures shared across test modules."""

from tests.pg import pg

__all__ = ["pg"]
