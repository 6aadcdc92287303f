"""Errors raised when Kafka cannot be reached or the local broker cannot run."""

from __future__ import annotations


class BrokerUnavailableError(RuntimeError):
    """No broker answered at the bootstrap servers within the allowed time."""


class LocalBrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""
