"""Herald's exception tree.

ServiceError
├── ConfigError             bad or missing setting, found at start-up
├── InvalidRequest          the request itself is unusable (400)
│   ├── InvalidJSON         the body is not JSON (line and column)
│   ├── InvalidGzip         Content-Encoding: gzip, but the body is not gzip
│   └── InvalidJourney      a journey document that cannot run (each problem: step, field)
├── InvalidEvents           strict mode: the batch has invalid events (400)
├── PayloadTooLarge         past a size or count limit (413)
├── UnsupportedEncoding     a Content-Encoding Herald does not read (415)
├── AuthError
│   ├── MissingKey          no Authorization header (401)
│   ├── UnknownKey          the key is not known, or revoked (401)
│   └── WrongKeyKind        a write key on an admin route (403)
├── NotFound                no such resource (404)
├── Conflict                the resource already exists (409)
├── Overloaded              too much work queued: retry later (503)
└── StoreUnavailable        the store cannot be reached or written (503)
"""

from typing import Any


class ServiceError(Exception):
    """Raised for every failure Herald reports to a caller; the message says what to do."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(ServiceError):
    """Raised when a setting is missing or has a value Herald cannot use."""

    code = "config_error"


class InvalidRequest(ServiceError):
    """Raised when the request body or its parameters cannot be used at all."""

    status = 400
    code = "invalid_request"


class InvalidJSON(InvalidRequest):
    """Raised when the body is not valid JSON; details carry line and column."""

    code = "invalid_json"


class InvalidJourney(InvalidRequest):
    """Raised when a journey document has problems; details carry them (step, field, message)."""

    code = "invalid_journey"


class InvalidGzip(InvalidRequest):
    """Raised when the body is declared gzip but does not decompress."""

    code = "invalid_gzip"


class InvalidEvents(ServiceError):
    """Raised in strict mode when any event of the batch is invalid; nothing was stored."""

    status = 400
    code = "invalid_events"


class PayloadTooLarge(ServiceError):
    """Raised when a body or batch is past the configured limits."""

    status = 413
    code = "payload_too_large"


class UnsupportedEncoding(ServiceError):
    """Raised when the body uses a Content-Encoding other than gzip or identity."""

    status = 415
    code = "unsupported_encoding"


class AuthError(ServiceError):
    """Raised when a request cannot be tied to a workspace with the right key."""

    status = 401
    code = "unauthorized"


class MissingKey(AuthError):
    """Raised when the Authorization header is missing or not of the form 'Api-Key <key>'."""

    code = "missing_api_key"


class UnknownKey(AuthError):
    """Raised when the API key is not known to Herald, or was revoked."""

    code = "unknown_api_key"


class WrongKeyKind(AuthError):
    """Raised when a write key is used on a route that needs an admin key."""

    status = 403
    code = "admin_key_required"


class NotFound(ServiceError):
    """Raised when the requested resource does not exist in the caller's workspace."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """Raised when creating a resource that already exists."""

    status = 409
    code = "conflict"


class Overloaded(ServiceError):
    """Raised when the commit queue is full; the caller should retry after a pause."""

    status = 503
    code = "overloaded"


class StoreUnavailable(ServiceError):
    """Raised when the store cannot be reached or refuses a write."""

    status = 503
    code = "store_unavailable"
