"""Herald's configuration: built once from the environment, then frozen."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from herald.errors import ConfigError

T = TypeVar("T")

MIB = 1024 * 1024
SYNCHRONOUS_MODES = ("full", "normal")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_PORT = 65_535


@dataclass(frozen=True)
class Settings:
    """Every setting Herald reads; `Settings.from_env` is the only reader of the environment."""

    database_url: str = "sqlite:///herald.db"
    host: str = "127.0.0.1"
    port: int = 8000
    # "full": fsync the log on every group commit (survives power loss).
    # "normal": no fsync per commit (survives kill -9 of Herald, not a power cut).
    sqlite_synchronous: str = "full"
    max_body_bytes: int = 5 * MIB  # after decompression; bounds request memory
    max_batch_events: int = 10_000
    max_event_bytes: int = 64 * 1024
    # Events waiting for a commit beyond this answer 503: bounds memory under overload.
    max_pending_events: int = 200_000
    # Largest group commit, in events: bounds one transaction's size and latency.
    max_commit_events: int = 20_000
    # A revoked key stops working on every process within this many seconds.
    key_cache_ttl_s: float = 2.0
    bootstrap_api_key: str | None = None
    bootstrap_admin_key: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    # One log line per HTTP request (uvicorn's access log); off by default: it costs throughput.
    access_log: bool = False
    # serve runs the processor role as a child process; off when `herald processor` runs apart.
    embedded_processor: bool = True
    # A processor that stops renewing its partition leases loses them after this many seconds.
    processor_lease_s: float = 10.0
    # serve runs the delivery role (webhooks, email) as a child process; off for `herald delivery`.
    embedded_delivery: bool = True
    # Email: none of it is sent until HERALD_SMTP_HOST is set.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"  # none | starttls | tls
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "herald@localhost"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Build settings from HERALD_* variables; a bad value fails naming the variable."""
        default = cls()
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = f"HERALD_{field.name.upper()}"
            if name in environ:
                current = getattr(default, field.name)
                values[field.name] = _cast(name, environ[name], _caster(current))
        values.update({key: value for key, value in overrides.items() if value is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Fail with a ConfigError naming the setting when a value cannot work."""
        for name, value, choices in (
            ("sqlite_synchronous", self.sqlite_synchronous, SYNCHRONOUS_MODES),
            ("log_format", self.log_format, ("json", "console")),
            ("log_level", self.log_level.upper(), LOG_LEVELS),
            ("smtp_security", self.smtp_security, ("none", "starttls", "tls")),
        ):
            if value not in choices:
                raise ConfigError(
                    f"HERALD_{name.upper()} is {getattr(self, name)!r}; "
                    f"use one of {', '.join(choices)}."
                )
        for name in (
            "max_body_bytes",
            "max_batch_events",
            "max_event_bytes",
            "max_pending_events",
            "max_commit_events",
            "port",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"HERALD_{name.upper()} must be a positive integer.")
        if self.port > MAX_PORT:
            raise ConfigError(f"HERALD_PORT is {self.port}; a port is at most {MAX_PORT}.")
        if self.processor_lease_s <= 0:
            raise ConfigError("HERALD_PROCESSOR_LEASE_S must be a positive number of seconds.")
        if self.key_cache_ttl_s < 0:
            raise ConfigError("HERALD_KEY_CACHE_TTL_S must be zero or more seconds.")
        if not self.database_url.startswith(("sqlite://", "postgresql://")):
            scheme = self.database_url.split("://", 1)[0] if "://" in self.database_url else ""
            raise ConfigError(
                f"HERALD_DATABASE_URL has the scheme {scheme[:20]!r}; use "
                "postgresql://user:password@host:5432/db (the password percent-encoded) or "
                "sqlite:///path/to/file.db (the default is sqlite:///herald.db)."
            )


def _caster(current: object) -> Callable[[str], object]:
    if isinstance(current, bool):
        return lambda raw: raw.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int
    if isinstance(current, float):
        return float
    return str


def _cast(name: str, raw: str, caster: Callable[[str], T]) -> T:
    try:
        return caster(raw)
    except ValueError:
        raise ConfigError(f"{name} is {raw!r}, which is not a valid value for it.") from None
