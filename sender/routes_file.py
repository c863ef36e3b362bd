"""Provider routes from a TOML file (``HEXCAST_PROVIDERS_FILE``).

Each ``[[route]]`` is one provider account: the fields of :class:`~sender.models.ProviderSpec`
(``name``, ``kind``, ``account``, ``sender_id`` or ``sender_pool`` (a list of numbers: each
recipient always gets the same one), ``messaging_service``, ``validity_s`` (seconds the provider
may keep trying a message, 60-259200), ``callback_url``, ``url``, ``weight``, ``priority``,
``concurrency``, ``lanes``, ``tenants``, ``countries``, ``requests_per_s``) and ``mps``
(segments per second, ProviderSpec's ``rate_per_s``). Secrets are never in the file:
``token`` (and ``webhook_key`` where it is a secret) name where to read them,
``{ env = "VAR" }`` or ``{ file = "/run/secrets/x" }``; they are held as ``SecretStr`` until
the adapter is built and never logged. An error names the route and the field::

    [[route]]
    name = "twilio-us"
    kind = "twilio"
    account = "AC0123456789abcdef0123456789abcdef"
    token = { env = "TWILIO_AUTH_TOKEN" }
    sender_id = "+13125550100"
    lanes = ["otp", "geo"]
    mps = 10
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from hexcast.core.errors import ConfigError
from sender.models import Lane, ProviderKind, ProviderSpec, SmppOptions

__all__ = ["RouteEntry", "SecretRef", "load_routes"]


class SecretRef(BaseModel):
    """Where a secret is: an environment variable or a file (its content, stripped)."""

    model_config = ConfigDict(extra="forbid")

    env: Annotated[str | None, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = None
    file: Annotated[str | None, Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def read(self) -> SecretStr:
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ValueError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        path = Path(self.file or "")
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"secret file {path} cannot be read: {exc.strerror}") from None
        if not value:
            raise ValueError(f"secret file {path} is empty")
        return SecretStr(value)


class RouteEntry(BaseModel):
    """One ``[[route]]`` of the file, before its secrets are read."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: ProviderKind
    token: SecretRef
    webhook_key: SecretRef | str | None = None
    account: str | None = None
    sender_id: str | None = None
    sender_pool: list[str] | None = None
    validity_s: int | None = None
    messaging_service: str | None = None
    callback_url: str | None = None
    url: str | None = None
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    priority: Annotated[int, Field(ge=1, le=9)] = 1
    concurrency: Annotated[int | None, Field(ge=1, le=512)] = None
    lanes: list[Lane] = Field(default_factory=lambda: list(Lane))
    tenants: list[int] | None = None
    countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = None
    mps: Annotated[float | None, Field(gt=0)] = None
    requests_per_s: Annotated[float | None, Field(gt=0)] = None
    smpp: SmppOptions | None = None  # an SMSC's binds, window, pace (kind "smpp")
    tenant_senders: bool = False  # may send from tenants' own sender ids (their numbers are on it)

    def spec(self) -> ProviderSpec:
        """The route as the sender uses it, secrets read (a ValueError names what failed)."""
        key = self.webhook_key.read().get_secret_value() if isinstance(self.webhook_key, SecretRef) \
            else self.webhook_key
        fields: dict[str, Any] = self.model_dump(
            exclude={"token", "webhook_key", "mps", "url"}, exclude_none=True)
        if self.url:
            fields["url"] = self.url
        return ProviderSpec(**fields, token=self.token.read().get_secret_value(), webhook_key=key,
                            rate_per_s=self.mps)


def load_routes(path: str) -> list[ProviderSpec]:
    """The routes of the file at ``path``; a :class:`ConfigError` names the route and field."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"providers file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"providers file {path}: not TOML: {exc}") from None
    raw = document.get("route")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"providers file {path}: no [[route]] tables")
    specs: list[ProviderSpec] = []
    for n, item in enumerate(raw, start=1):
        label = f"route {item.get('name', n)!r}" if isinstance(item, dict) else f"route {n}"
        try:
            specs.append(RouteEntry.model_validate(item).spec())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"providers file {path}: {label}: "
                              f"{f'{where}: ' if where else ''}{msg}") from None
        except ValueError as exc:
            raise ConfigError(f"providers file {path}: {label}: {exc}") from None
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"providers file {path}: duplicate route name {duplicates[0]!r}")
    return specs
