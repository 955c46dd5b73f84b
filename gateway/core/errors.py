"""The gateway's error tree, grouped by what the caller does next.

- ConfigError: found at startup; print it and exit 2.
- TransientError: a peer is away; the supervisor retries with backoff.
- SinkWriteError: a sink could not write; `retryable` and `retry_after` decide the retry.
- DecodeError: this input is bad for good; count it and skip it.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid. Raised at startup only."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class TransientError(GatewayError):
    """A peer is unavailable for now; retried by the supervisor."""


class SourceUnavailable(TransientError):
    """A source's peer (device, broker) cannot be reached."""

    def __init__(self, endpoint: str, hint: str) -> None:
        super().__init__(f"{endpoint}: {hint}")
        self.endpoint = endpoint


class SinkWriteError(GatewayError):
    """A sink failed to write a batch."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class DecodeError(GatewayError):
    """An input (register words, payload, file row) cannot be decoded. Permanent for that input."""
