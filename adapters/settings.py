"""The TOML configuration (operations.md §2), decoded once into typed msgspec Structs.

An unknown key, a wrong type or a missing required key raises ConfigError naming the file,
the key and what was expected; the CLI turns it into exit code 2.
"""
from __future__ import annotations

import codecs
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.durations import parse_duration
from adapters.schedule import Schedule
from ledger.errors import ConnectorError

CONFIG_ENV = "ML_CONNECTOR_CONFIG"
DEFAULT_CONFIG = "ml-connector.toml"



class ConfigError(ConnectorError):
    """The configuration cannot be used; the message says where and what was expected."""

    exit_code = 2


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ConnectorSettings(_Section, kw_only=True):
    company: str
    ledger: str = "sqlite:///data/ledger.db"
    data_dir: str = "data"
    schedule: str = "15m"
    max_attempts: int = 8
    intent_lease: str = "2m"           # a posting intent younger than this may be in flight
    post_batch: int = 200              # invoices claimed and posted per round (one $batch)
    retry_base: str = "30s"            # first backoff; doubles per attempt, with jitter
    retry_max: str = "1h"
    # Bounds on one cycle against a hung IFS (issue 17): after this long the cycle stops
    # calling IFS and says so; the next cycle carries on.
    cycle_timeout: str = "10m"
    timezone: str = "UTC"              # IANA name: report dates, the digest time, cron lines
    # Go-live cutover: invoices approved (or dated, per cutover_date) before this ISO date are
    # recorded as Skipped and never posted: they were keyed in IFS by hand before go-live.
    ignore_approved_before: str = ""
    # PostgreSQL: this connector's tables in their own schema (several tenants, one database)
    schema: str = ""
    cutover_date: str = "approved"     # "approved" (Stampli's approval date) or "invoice"


class FileKindSettings(_Section, kw_only=True):
    patterns: list[str] = []
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    decimal_separator: str = "."
    thousands_separator: str = ""
    date_format: str = "%Y-%m-%d"
    columns: dict[str, str] = {}       # canonical field -> the template's header text


class InvoiceFileSettings(FileKindSettings, kw_only=True):
    patterns: list[str] = msgspec.field(
        default_factory=lambda: ["invoices_*.csv", "invoices_*.xml"])
    approved_statuses: list[str] = msgspec.field(default_factory=lambda: ["Approved"])


class VendorFileSettings(FileKindSettings, kw_only=True):
    patterns: list[str] = msgspec.field(
        default_factory=lambda: ["vendors_*.csv", "vendors_*.xml"])


class PurchaseOrderFileSettings(FileKindSettings, kw_only=True):
    patterns: list[str] = msgspec.field(default_factory=lambda: ["purchase_orders_*.csv"])


class StampliSettings(_Section, kw_only=True):
    host: str
    port: int = 22
    username: str
    auth: str = "password"             # or "key"
    known_hosts: str = "known_hosts"
    outbound_dir: str = "/outbound"
    archive_dir: str = ""
    min_file_age: str = "30s"
    stable_wait: str = "2s"            # time between the two looks at a file's size and mtime
    connect_timeout: str = "15s"
    read_timeout: str = "60s"
    companies: dict[str, str] = {}     # Stampli CompanyID -> IFS company
    invoices: InvoiceFileSettings = msgspec.field(default_factory=InvoiceFileSettings)
    vendors: VendorFileSettings = msgspec.field(default_factory=VendorFileSettings)
    purchase_orders: PurchaseOrderFileSettings = msgspec.field(
        default_factory=PurchaseOrderFileSettings
    )


class PostingSettings(_Section, kw_only=True):
    post_voucher: bool = True
    voucher_type: str = "I"
    ap_liability_account: str = "2440"
    cost_center_code_part: str = "B"
    tax_accounts: dict[str, str] = {}


class EndpointSettings(_Section, kw_only=True):
    """One entry of the endpoint map: where an IFS entity lives."""
    projection: str
    entity_set: str
    keys: list[str] = []


class IfsSettings(_Section, kw_only=True):
    base_url: str
    realm: str = ""
    endpoint: str = "int"
    client_id: str = "ml-connector"
    token_url: str = ""
    token_auth: str = "post"           # the secret in the form, or "basic": an HTTP Basic header
    requests_per_minute: int = 1000
    page_size: int = 5000
    use_batch: bool = True
    create_missing_suppliers: bool = True
    verify_tls: bool | str = True
    timeout: str = "60s"
    reference_refresh: str = "15m"
    backoff_base: str = "0.5s"         # retries of one request: full jitter up to base * 2^n
    backoff_cap: str = "30s"
    retries: int = 6
    # Circuit breaker: after this many consecutive timeouts, lost connections, 5xx without an
    # IFS business code or unreadable answers, stop calling IFS for the rest of the cycle.
    breaker_after: int = 5
    posting: PostingSettings = msgspec.field(default_factory=PostingSettings)
    endpoints: dict[str, EndpointSettings] = {}
    # How a document goes into a $batch (issue 13): "references" = one changeset using `$n`
    # If-Match references (IFS); "portable" = header with its lines (deep insert), then the
    # action with the real key and ETag (any OData V4 server); "auto" = references until the
    # server refuses them (412), then portable for that projection; "off" = no $batch at all.
    batch_mode: Literal["auto", "references", "portable", "off"] = "auto"


class WebSettings(_Section, kw_only=True):
    """The exception workspace (`ml-connector serve`, `run --serve`)."""
    host: str = "127.0.0.1"            # loopback: put a TLS reverse proxy in front for others
    port: int = 8650
    session_lifetime: str = "8h"       # a login lasts this long
    approval_age: str = "3d"           # awaiting approval longer than this is an exception
    page_size: int = 50                # rows per page of the exceptions list


class NotifySettings(_Section, kw_only=True):
    """What is sent to the destinations in the secret `notify.urls` (apprise URLs)."""
    new_exceptions: bool = True
    max_listed: int = 10               # failures listed in one message, then "and N more"
    trouble: bool = True
    trouble_cycles: int = 3            # SFTP/IFS unreachable or a rejected file, in a row
    stalled: bool = True
    stalled_after: str = "2h"          # no successful cycle for this long (the daemon checks)
    digest: bool = True
    digest_at: str = "08:00"           # local time (connector.timezone)
    workspace_url: str = ""            # linked from the digest when set
    timeout: str = "20s"


class Settings(_Section, kw_only=True):
    connector: ConnectorSettings
    stampli: StampliSettings | None = None
    ifs: IfsSettings | None = None
    web: WebSettings = msgspec.field(default_factory=WebSettings)
    notify: NotifySettings | None = None
    source: str = ""                   # the file it was read from (set by load_settings)

    @property
    def data_dir(self) -> Path:
        return resolve_path(self, self.connector.data_dir)


def resolve_path(settings: Settings, value: str) -> Path:
    """Relative paths in the config are relative to the config file's folder."""
    path = Path(value).expanduser()
    if path.is_absolute() or not settings.source:
        return path
    return Path(settings.source).resolve().parent / path


def ledger_url(settings: Settings) -> str:
    """The ledger URL with a relative sqlite path resolved against the config's folder."""
    url = settings.connector.ledger
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///"):]
        if raw != ":memory:":
            return "sqlite:///" + str(resolve_path(settings, raw))
    return url


def find_config(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


# The roles `[ifs.endpoints.<role>]` may override, checked at load: adapters/ifs/endpoints.py's
# default_map has one entry per role, in this order (tests/ifs/test_check.py holds them equal).
ENDPOINT_ROLES = ("account", "cost_center", "supplier", "supplier_company", "purchase_order",
                  "invoice", "invoice_line", "voucher", "voucher_row")
_CHOICES = {
    ("stampli", "auth"): ("password", "key"),
    ("ifs", "token_auth"): ("post", "basic"),
    ("connector", "cutover_date"): ("approved", "invoice"),
}
# Every numeric setting and every duration, with the range it must fall in (both ends
# included); durations are written as in the config. A new numeric setting needs a row here
# (tests/test_settings_ranges.py fails otherwise).
RANGES: dict[str, tuple[int, int] | tuple[str, str]] = {
    "connector.schedule": ("1s", "7d"),          # as an interval; a cron line is checked apart
    "connector.max_attempts": (1, 100),
    "connector.intent_lease": ("1s", "1d"),
    "connector.post_batch": (1, 5000),
    "connector.retry_base": ("0s", "1d"),
    "connector.retry_max": ("0s", "7d"),
    "connector.cycle_timeout": ("0s", "1d"),     # 0s: no deadline
    "stampli.port": (1, 65535),
    "stampli.min_file_age": ("0s", "1d"),
    "stampli.stable_wait": ("0s", "10m"),
    "stampli.connect_timeout": ("100ms", "10m"),
    "stampli.read_timeout": ("100ms", "1h"),
    "ifs.requests_per_minute": (1, 1_000_000),
    "ifs.page_size": (1, 100_000),
    "ifs.timeout": ("100ms", "1h"),
    "ifs.reference_refresh": ("0s", "7d"),
    "ifs.backoff_base": ("0s", "10m"),
    "ifs.backoff_cap": ("0s", "1h"),
    "ifs.retries": (0, 100),
    "ifs.breaker_after": (1, 1000),
    "web.port": (1, 65535),
    "web.session_lifetime": ("1m", "7d"),
    "web.approval_age": ("0s", "10d"),
    "web.page_size": (5, 500),
    "notify.max_listed": (1, 1000),
    "notify.trouble_cycles": (1, 1000),
    "notify.stalled_after": ("1m", "7d"),
    "notify.timeout": ("1s", "10m"),
}
_CRON_KEYS = {"connector.schedule"}            # may be a cron line instead of an interval
_ISO_DAY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
LEDGER_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def load_settings(path: str | Path) -> Settings:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file; create one with `ml-connector init`"
            " or point --config / $ML_CONNECTOR_CONFIG at it"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a configuration file; point --config at"
                          f" the .toml file (e.g. {path / DEFAULT_CONFIG})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") \
            from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x});"
                          " save the file as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(raw, source=str(path))


def settings_from_dict(raw: dict[str, Any], source: str = "") -> Settings:
    where = source or "<config>"
    try:
        settings = msgspec.convert({**raw, "source": source}, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(exc)}") from None
    try:
        _check_ranges(settings)
        _check_values(settings)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for (section, key), allowed in _CHOICES.items():
        part = getattr(settings, section)
        if part is not None and getattr(part, key) not in allowed:
            expected = " or ".join(f'"{choice}"' for choice in allowed)
            raise ConfigError(f"{where}: `{section}.{key}`: expected {expected}, "
                              f"got {getattr(part, key)!r}")
    return settings


def _check_time_settings(settings: Settings) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.connector.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"`connector.timezone`: {settings.connector.timezone!r} is not an"
                         " IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)") from None
    if settings.notify is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d",
                                                        settings.notify.digest_at):
        raise ValueError(f"`notify.digest_at`: expected a local time HH:MM, got"
                         f" {settings.notify.digest_at!r}")


def _check_values(settings: Settings) -> None:
    """What the types let through but would stop the program later, checked at load: the
    schedule's cron line, each file kind's encoding and delimiter, the CA bundle (made
    absolute: relative to the config file, like every path in it), the endpoint roles."""
    _check_time_settings(settings)
    try:
        Schedule(settings.connector.schedule, settings.connector.timezone)
    except ValueError as exc:
        raise ValueError(f"`connector.schedule`: {exc}") from None
    _check_postgres(settings)
    cutover = settings.connector.ignore_approved_before
    if cutover and not _ISO_DAY.match(cutover):
        raise ValueError(f"`connector.ignore_approved_before`: expected a date like 2026-12-01,"
                         f" got {cutover!r}")
    ledger = settings.connector.ledger
    if not ledger.startswith(LEDGER_SCHEMES):
        shown = re.sub(r"(//[^:/@]*):[^@/]*@", r"\1@", ledger)     # never show a password
        raise ValueError(f"`connector.ledger`: {shown!r} is neither sqlite:///PATH nor"
                         " postgresql://USER@HOST:PORT/DB")
    if settings.stampli is not None:
        for kind in ("invoices", "vendors", "purchase_orders"):
            files = getattr(settings.stampli, kind)
            try:
                codecs.lookup(files.encoding)
            except LookupError:
                raise ValueError(f"`stampli.{kind}.encoding`: {files.encoding!r} is not an "
                                 "encoding Python knows (e.g. utf-8, cp1252, latin-1)") from None
            if len(files.delimiter) != 1:
                raise ValueError(f"`stampli.{kind}.delimiter`: expected one character, got "
                                 f"{files.delimiter!r}")
    ifs = settings.ifs
    if ifs is not None:
        if isinstance(ifs.verify_tls, str):
            bundle = resolve_path(settings, ifs.verify_tls)
            if not bundle.is_file():
                raise ValueError(f"`ifs.verify_tls`: no CA bundle at {bundle}")
            ifs.verify_tls = str(bundle)
        unknown = sorted(set(ifs.endpoints) - set(ENDPOINT_ROLES))
        if unknown:
            raise ValueError(f"`ifs.endpoints.{unknown[0]}`: unknown role; known roles: "
                             f"{', '.join(sorted(ENDPOINT_ROLES))}")


def _check_postgres(settings: Settings) -> None:
    """The password lives in the secret ledger.password, never in the file; the schema is a
    plain identifier; libpq options are ones the connector passes on."""
    from urllib.parse import urlparse

    c = settings.connector
    if c.ledger.startswith(("postgresql://", "postgres://")):
        if urlparse(c.ledger).password:
            raise ValueError("`connector.ledger`: the URL holds a password; remove it and store"
                             " it with `ml-connector secrets set ledger.password`")
        from ledger.errors import LedgerError
        from ledger.persistence import postgres_options

        try:
            postgres_options(c.ledger)
        except LedgerError as exc:
            raise ValueError(f"`connector.ledger`: {exc}") from None
    if c.schema:
        if not c.ledger.startswith(("postgresql://", "postgres://")):
            raise ValueError("`connector.schema` is for a PostgreSQL ledger; a SQLite ledger is"
                             " a file of its own")
        if not _SCHEMA_NAME.match(c.schema):
            raise ValueError(f"`connector.schema`: {c.schema!r}: use lower-case letters, digits"
                             " and _")


def _check_ranges(settings: Settings) -> None:
    for key, (low, high) in RANGES.items():
        section, _, name = key.rpartition(".")
        part: Any = settings
        for step in section.split("."):
            part = getattr(part, step)
            if part is None:
                break
        if part is None:
            continue
        value = getattr(part, name)
        if isinstance(low, str):
            try:
                number = parse_duration(value)
            except ValueError as exc:
                if key in _CRON_KEYS and _looks_like_cron(value):
                    continue
                raise ValueError(f"`{key}`: {exc}") from None
            within = parse_duration(low) <= number <= parse_duration(high)
        else:
            within = low <= value <= high
        if not within:
            cron = " (or a cron line)" if key in _CRON_KEYS else ""
            raise ValueError(f"`{key}` = {value!r} is out of range: allowed {low} to {high}"
                             f"{cron}")


def _looks_like_cron(value: str) -> bool:
    return len(value.split()) == 5 or value.strip().startswith("@")


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec says `Object contains unknown field `x` - at `$.stampli``; make it a config key."""
    text = str(exc)
    match = re.match(r"(.*?)(?: - at `\$(.*)`)?$", text)
    message, where = (match.group(1), match.group(2)) if match else (text, None)
    path = (where or "").lstrip(".")
    field = re.search(r"field `([^`]+)`", message)
    if field:
        path = f"{path}.{field.group(1)}" if path else field.group(1)
    path = re.sub(r"\[(\d+)\]", r"[\1]", path)
    return f"`{path}`: {message}" if path else message
