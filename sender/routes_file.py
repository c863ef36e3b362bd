"""Provider routes from a TOML or YAML file (``HEXCAST_PROVIDERS_FILE``; ``.toml``, ``.yaml``
or ``.yml``).

Each ``[[route]]`` (in YAML, each item of the top-level ``route:`` list) is one provider account:
the fields of :class:`~sender.models.ProviderSpec`
(``name``, ``kind``, ``account``, ``sender_id`` or ``sender_pool`` (a list of numbers: each
recipient always gets the same one), ``messaging_service``, ``validity_s`` (seconds the provider
may keep trying a message, 60-259200), ``callback_url``, ``url``, ``weight``, ``priority``,
``concurrency``, ``lanes``, ``tenants``, ``countries``, ``requests_per_s``) and ``mps``
(segments per second, ProviderSpec's ``rate_per_s``). Secrets are never in the file:
``token`` (and ``webhook_key`` where it is a secret) name where to read them,
``{ env = "VAR" }`` or ``{ file = "/run/secrets/x" }``; they are held as ``SecretStr`` until
the adapter is built and never logged. Both formats go through the same validation, and an
error names the route and the field::

    [[route]]
    name = "twilio-us"
    kind = "twilio"
    account = "AC0123456789abcdef0123456789abcdef"
    token = { env = "TWILIO_AUTH_TOKEN" }
    sender_id = "+13125550100"
    lanes = ["otp", "geo"]
    mps = 10

In YAML, numbers and country codes are quoted (unquoted, ``+13125550100`` is read as an integer
and ``NO`` as false), and a key given twice in a mapping is an error, as in TOML::

    route:
      - name: twilio-us
        kind: twilio
        account: AC0123456789abcdef0123456789abcdef
        token: { env: TWILIO_AUTH_TOKEN }
        sender_id: "+13125550100"
        lanes: [otp, geo]
        mps: 10
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
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
        key = self.webhook_key.read() if isinstance(self.webhook_key, SecretRef) else self.webhook_key
        fields: dict[str, Any] = self.model_dump(
            exclude={"token", "webhook_key", "mps", "url"}, exclude_none=True)
        if self.url:
            fields["url"] = self.url
        return ProviderSpec(**fields, token=self.token.read(), webhook_key=key,
                            rate_per_s=self.mps)


def load_routes(path: str) -> list[ProviderSpec]:
    """The routes of the file at ``path`` (TOML or YAML, by its suffix); a :class:`ConfigError`
    names the file, and the route and field at fault."""
    document, is_yaml = _document(path)
    raw = document.get("route")
    if not isinstance(raw, list) or not raw:
        where = "'route:' list" if is_yaml else "[[route]] tables"
        raise ConfigError(f"providers file {path}: no {where}")
    specs = [_spec(path, n, item, is_yaml) for n, item in enumerate(raw, start=1)]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"providers file {path}: duplicate route name {duplicates[0]!r}")
    return specs


def _spec(path: str, n: int, item: object, is_yaml: bool) -> ProviderSpec:
    """Route ``n`` of the file, validated and its secrets read."""
    label = f"route {item.get('name', n)!r}" if isinstance(item, dict) else f"route {n}"
    try:
        return RouteEntry.model_validate(item).spec()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if is_yaml and err["type"] == "string_type":
            msg += " (quote it in YAML: unquoted, +13125550100 is a number and NO is false)"
        raise ConfigError(f"providers file {path}: {label}: "
                          f"{f'{where}: ' if where else ''}{msg}") from None
    except ValueError as exc:
        raise ConfigError(f"providers file {path}: {label}: {exc}") from None


_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}


def _document(path: str) -> tuple[dict[str, Any], bool]:
    """The file's top-level table or mapping, and whether it is YAML (a ConfigError names the
    file, and for YAML the line, when it cannot be read or parsed or is not a mapping)."""
    suffix = Path(path).suffix.lower()
    kind = _FORMATS.get(suffix)
    if kind is None:
        raise ConfigError(f"providers file {path}: unknown suffix {suffix or '(none)'!r}:"
                          " name it .toml, .yaml or .yml")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"providers file {path}: {exc.strerror}") from None
    if kind == "TOML":
        try:
            return tomllib.loads(text), False
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"providers file {path}: not TOML: {exc}") from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # safe_load, keys once
    except yaml.YAMLError as exc:
        raise ConfigError(f"providers file {path}: not YAML: {_yaml_problem(exc)}") from None
    if not isinstance(document, dict):
        found = "empty" if document is None else f"a {type(document).__name__}"
        raise ConfigError(f"providers file {path}: the top level is {found}, not a mapping"
                          " (route: followed by a list of routes)")
    return document, True


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What yaml found wrong, with the line and column (1-based) when it gives them."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)
    context, began = exc.context, exc.context_mark
    if context and began:
        context += f" begun on line {began.line + 1}"
    problem = ", ".join(p for p in (context, exc.problem) if p) or "unreadable"
    mark = exc.problem_mark or began
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, except that a key given twice in one mapping is an error
    (TOML refuses it; YAML would silently keep the last, say the second ``token``)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merged mappings (<<) may repeat keys; a non-scalar key fails below
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice in one mapping", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
