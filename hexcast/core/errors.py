"""One error hierarchy. Third-party errors are translated into these at the boundaries."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "Forbidden",
    "HexcastError",
    "InvalidInput",
    "NotFound",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "SmppError",
    "Unauthorized",
]


class HexcastError(Exception):
    """Base of every error hexcast raises on purpose."""


class ConfigError(HexcastError):
    """A setting is missing or invalid; the process cannot start."""


class InvalidInput(HexcastError):
    """Input failed a domain rule (beyond schema validation)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(HexcastError):
    """The thing does not exist, or belongs to another tenant."""


class ConflictError(HexcastError):
    """The request conflicts with existing state."""


class Unauthorized(HexcastError):
    """Missing or unknown credentials; ``scheme`` is the one to send (``WWW-Authenticate``)."""

    def __init__(self, message: str, *, scheme: str = "ApiKey") -> None:
        super().__init__(message)
        self.scheme = scheme


class Forbidden(HexcastError):
    """Valid credentials without the right: a key whose scope does not cover the route."""


class ProviderError(HexcastError):
    """An SMS provider call failed."""

    retryable: bool = True


class ProviderRateLimited(ProviderError):
    """The provider answered 429; wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, timeout or connection failure.

    ``ambiguous`` is True when the provider may have acted on the request (a read timeout or
    a dropped connection after the request was written); False when it certainly did not (a
    refused connection, or an HTTP 5xx answer, which the provider contract defines as "not
    processed"). ``unreached`` is True when no connection was made at all (refused, or the
    connect timed out): the provider is down or cut off, which is no message's fault, so the
    sender does not count the attempt against the message (it waits, behind the breaker, until
    the route answers or the message expires).
    """

    def __init__(self, message: str, *, ambiguous: bool = False, unreached: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.unreached = unreached


class SmppError(HexcastError):
    """An SMPP PDU or stream is malformed; ``status`` is the SMPP command_status to answer
    with (``hexcast.core.smpp.pdu.Status``; an int here so the errors import nothing)."""

    def __init__(self, message: str, *, status: int = 0x08) -> None:
        super().__init__(message)
        self.status = status
