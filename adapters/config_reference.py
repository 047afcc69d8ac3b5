"""The configuration reference: every key's meaning and example, in one table next to the
settings, rendered with the type and default read from the settings Structs themselves.

docs/configuration.md and docs/config.schema.json are generated from here
(`python -m adapters.config_reference`); tests/test_config_reference.py fails when a
settings field has no entry, or when either file is not current."""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from adapters.settings import (_CHOICES, RANGES, EndpointSettings, FileKindSettings, Settings)

KIND = "<kind>"           # stampli.invoices / stampli.vendors / stampli.purchase_orders
ROLE = "<role>"           # an IFS entity role in [ifs.endpoints]
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"
KINDS = ("invoices", "vendors", "purchase_orders")

SECTIONS = {
    "connector": "What the connector is and where it keeps its ledger.",
    "stampli": "Stampli's SFTP export folder. Secrets: `stampli.password`, or"
               " `stampli.private_key` (and `stampli.private_key_passphrase`) with"
               " `auth = \"key\"`.",
    f"stampli.{KIND}": "How to read each kind of export file (`[stampli.invoices]`,"
                       " `[stampli.vendors]`, `[stampli.purchase_orders]`).",
    "stampli.invoices": "Invoice files only.",
    "ifs": "IFS Cloud's OData API. Secret: `ifs.client_secret`.",
    "ifs.posting": "How an invoice becomes IFS documents.",
    "notify": "Messages to people (destinations: the secret `notify.urls`, apprise URLs).",
    f"ifs.endpoints.{ROLE}": "Where each IFS entity lives, when a tenant differs from the"
                             " defaults (`ml-connector check` compares them with `$metadata`).",
}

# key -> (meaning, example as written in the TOML file)
DOCS: dict[str, tuple[str, str]] = {
    "connector.company": ("Default IFS company code: invoices of a Stampli company with no"
                          " entry in `stampli.companies` go here.", '"10"'),
    "connector.ledger": ("Where the ledger lives: `sqlite:///PATH` (relative to the config's"
                         " folder) or `postgresql://USER@HOST:PORT/DB`.",
                         '"postgresql://mlc@db.internal:5432/ap"'),
    "connector.data_dir": ("Folder for kept copies of downloaded files, the secrets store and"
                           " the master key (relative to the config's folder).",
                           '"/var/lib/ml-connector"'),
    "connector.schedule": ("How often `run` starts a cycle: an interval, or a five-field cron"
                           " line.", '"*/15 6-20 * * 1-5"'),
    "connector.max_attempts": ("Attempts for a transient failure (IFS unreachable) before the"
                               " invoice is parked for `replay`.", "8"),
    "connector.intent_lease": ("A posting intent younger than this, recorded by another worker,"
                               " may still be waiting for IFS's answer: left alone.", '"2m"'),
    "connector.post_batch": ("Invoices claimed and posted per round (one OData `$batch`).",
                             "200"),
    "connector.retry_base": ("First wait before retrying a transient failure; doubles per"
                             " attempt, with jitter.", '"30s"'),
    "connector.retry_max": ("Longest wait between two retries of one invoice.", '"1h"'),
    "connector.cycle_timeout": ("A cycle stops calling IFS after this long (a hung IFS); the"
                                " next cycle carries on. `0s`: no deadline.", '"10m"'),
    "connector.ignore_approved_before": (
        "Go-live cutover (ISO date): invoices approved (or dated, see `cutover_date`) before"
        " it are recorded as `skipped` and never posted. Empty: none.", '"2026-12-01"'),
    "connector.timezone": ("IANA time zone for report dates, the digest time and cron lines.",
                           '"Europe/Berlin"'),
    "connector.schema": ("PostgreSQL only: the schema holding this connector's tables, so"
                         " several connectors (tenants) can share one database. Created if"
                         " missing. The password is the secret `ledger.password`; libpq options"
                         " stay in the URL (`?sslmode=verify-full&sslrootcert=...`).",
                         '"tenant_acme"'),
    "connector.cutover_date": ("Which date `ignore_approved_before` compares: Stampli's"
                               " approval date, or the invoice date.", '"invoice"'),
    "stampli.host": ("The SFTP server's host name.", '"sftp.stampli.com"'),
    "stampli.port": ("The SFTP server's port.", "22"),
    "stampli.username": ("The SFTP login.", '"acme-ap"'),
    "stampli.auth": ("How to log in: with the secret `stampli.password`, or with the private"
                     " key in the secret `stampli.private_key`.", '"key"'),
    "stampli.known_hosts": ("The pinned SFTP host key(s), OpenSSH known_hosts format"
                            " (`ml-connector known-hosts fetch` writes it).",
                            '"/etc/ml-connector/known_hosts"'),
    "stampli.outbound_dir": ("The folder Stampli writes exports to.", '"/outbound"'),
    "stampli.archive_dir": ("If set, a file is moved there once fully recorded (relative paths"
                            " are inside `outbound_dir`).", '"archive"'),
    "stampli.min_file_age": ("A file younger than this is left for later (it may still be"
                             " being written); `run` polls again as soon as it is old enough,"
                             " before the next tick.", '"30s"'),
    "stampli.stable_wait": ("Time between the two looks at a file's size and mtime; a file"
                            " that changed in between is left for the next poll.", '"2s"'),
    "stampli.connect_timeout": ("Longest wait for the SFTP connection and login.", '"15s"'),
    "stampli.read_timeout": ("Longest wait for one SFTP answer.", '"60s"'),
    "stampli.companies": ("Stampli CompanyID -> IFS company code.", '{ C1042 = "10" }'),
    f"stampli.{KIND}.patterns": ("File names (glob patterns) of this kind of export.",
                                 '["invoices_*.csv"]'),
    f"stampli.{KIND}.encoding": ("The files' text encoding (Python codec name).", '"cp1252"'),
    f"stampli.{KIND}.delimiter": ("CSV field separator (one character).", '";"'),
    f"stampli.{KIND}.decimal_separator": ("Decimal separator in amounts.", '","'),
    f"stampli.{KIND}.thousands_separator": ("Thousands separator in amounts (empty: none).",
                                            '"."'),
    f"stampli.{KIND}.date_format": ("Date format (strftime) of date columns.", '"%d.%m.%Y"'),
    f"stampli.{KIND}.columns": ("Canonical field -> your template's header text, where it"
                                " differs from Stampli's default.",
                                '{ invoice_number = "Invoice #" }'),
    "stampli.invoices.approved_statuses": ("Stampli approval statuses that let an invoice go"
                                           " to IFS.", '["Approved", "Final Approved"]'),
    "ifs.base_url": ("IFS Cloud's base URL.", '"https://acme.ifs.cloud"'),
    "ifs.realm": ("The IAM realm (the token URL is built from it unless `token_url` is set).",
                  '"acme1"'),
    "ifs.endpoint": ("The OData service path segment (`int` for integrations, `main`).",
                     '"int"'),
    "ifs.client_id": ("The IAM client id of the connector's service user.",
                      '"ml-connector"'),
    "ifs.token_url": ("The OAuth2 token URL, when not the default built from `base_url` and"
                      " `realm`.", '"https://iam.acme.example/realms/acme1/protocol/openid-'
                      'connect/token"'),
    "ifs.token_auth": ("How the client secret is sent: in the token request's form (`post`),"
                       " or as an HTTP Basic header (`basic`).", '"basic"'),
    "ifs.requests_per_minute": ("Rate limit for every request to the tenant.", "600"),
    "ifs.page_size": ("Rows per page when reading reference data.", "5000"),
    "ifs.use_batch": ("Post several documents per OData `$batch` request.", "true"),
    "ifs.create_missing_suppliers": ("Create a supplier missing in IFS from Stampli's vendor"
                                     " record (else the invoice waits for a person).", "false"),
    "ifs.verify_tls": ("Check IFS's TLS certificate: true, false, or a CA bundle file.",
                       '"/etc/ssl/acme-ca.pem"'),
    "ifs.timeout": ("Longest wait for one HTTP request to IFS.", '"60s"'),
    "ifs.reference_refresh": ("How long cached reference data (accounts, cost centers, tax"
                              " codes, suppliers) is used before it is read again.", '"15m"'),
    "ifs.backoff_base": ("Retries of one request: the first wait (full jitter up to"
                         " base * 2^n).", '"0.5s"'),
    "ifs.backoff_cap": ("Retries of one request: the longest wait.", '"30s"'),
    "ifs.retries": ("Retries of one request that failed transiently.", "6"),
    "ifs.breaker_after": ("Consecutive timeouts / lost connections / 5xx after which a cycle"
                          " stops calling IFS.", "5"),
    "ifs.batch_mode": ("How documents are posted: `auto` uses one `$batch` changeset per"
                       " document until a server refuses it, then the portable path;"
                       " `references` and `portable` force a path; `off` sends one request per"
                       " write.", '"portable"'),
    "ifs.posting.post_voucher": ("Also create the GL voucher for each invoice.", "true"),
    "ifs.posting.voucher_type": ("The voucher type of those vouchers.", '"I"'),
    "ifs.posting.ap_liability_account": ("The AP liability account credited by the voucher.",
                                         '"2440"'),
    "ifs.posting.cost_center_code_part": ("Which code part letter holds the cost center"
                                          " (B -> CodeB).", '"B"'),
    "ifs.posting.tax_accounts": ("Tax code -> the GL account its tax amount is posted to.",
                                 '{ TX8 = "2640", VAT19 = "2641" }'),
    "notify.new_exceptions": ("Send a message when invoices newly need a person.", "true"),
    "notify.max_listed": ("Failures listed in one message, then \"and N more\".", "10"),
    "notify.trouble": ("Send a message when SFTP or IFS stays unreachable, or files are"
                       " rejected, `trouble_cycles` cycles in a row.", "true"),
    "notify.trouble_cycles": ("Cycles in a row before `trouble` is sent.", "3"),
    "notify.stalled": ("Send a message when no cycle has succeeded for `stalled_after`"
                       " (the daemon checks).", "true"),
    "notify.stalled_after": ("How long without a successful cycle counts as stalled.", '"2h"'),
    "notify.digest": ("Send a daily digest.", "true"),
    "notify.digest_at": ("Local time (connector.timezone) of the daily digest, HH:MM.",
                         '"07:30"'),
    "notify.workspace_url": ("Linked from the digest when set (the web workspace).",
                             '"https://mlc.acme.internal"'),
    "notify.timeout": ("Longest wait for one notification to be delivered.", '"20s"'),
    "web.host": ("Address the exception workspace listens on (`serve`, `run --serve`);"
                 " keep loopback and put a TLS reverse proxy in front.", '"127.0.0.1"'),
    "web.port": ("Port of the exception workspace.", "8650"),
    "web.session_lifetime": ("How long a login lasts.", '"8h"'),
    "web.approval_age": ("Invoices awaiting approval longer than this are listed as"
                         " exceptions.", '"3d"'),
    "web.page_size": ("Rows per page of the exceptions list.", "50"),
    f"ifs.endpoints.{ROLE}.projection": ("The OData projection (service) of this entity.",
                                         '"SupplierHandling.svc"'),
    f"ifs.endpoints.{ROLE}.entity_set": ("The entity set inside it.", '"SupplierSet"'),
    f"ifs.endpoints.{ROLE}.keys": ("Its key properties, in order.", '["SupplierId"]'),
}


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (Union, getattr(__import__("types"), "UnionType", Union)):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def fields() -> list[tuple[str, str, msgspec.structs.FieldInfo, str]]:
    """(documented key, real key, field, its Struct's name) for every settings field, in the
    Structs' order."""
    out: list[tuple[str, str, msgspec.structs.FieldInfo, str]] = []

    def walk(cls: type, prefix: str, generic: str) -> None:
        for f in msgspec.structs.fields(cls):
            if cls is Settings and f.name == "source":
                continue                       # set by load_settings, not a key
            tp = _unwrap(f.type)
            key, doc = f"{prefix}{f.name}", f"{generic}{f.name}"
            if _is_struct(tp):
                kind_generic = (f"stampli.{KIND}." if issubclass(tp, FileKindSettings)
                                else f"{doc}.")
                walk(tp, f"{key}.", kind_generic)
            elif get_origin(tp) is dict and get_args(tp)[1] is EndpointSettings:
                walk(EndpointSettings, f"{key}.{ROLE}.", f"{doc}.{ROLE}.")
            else:
                if generic == f"stampli.{KIND}." and f.name not in {
                        g.name for g in msgspec.structs.fields(FileKindSettings)}:
                    doc = key                  # a field of one kind only
                out.append((doc, key, f, cls.__name__))
    walk(Settings, "", "")
    return out


def undocumented() -> list[str]:
    return sorted({doc for doc, *_ in fields() if doc not in DOCS})


def _limits(key: str) -> tuple[tuple[str, ...] | None, tuple[Any, Any] | None]:
    """What settings.py checks a key against, for both renderings (the reference's type
    column, the schema's enum/pattern/range): its choices, and its range (durations as
    text: a duration key)."""
    return _CHOICES.get(tuple(key.rsplit(".", 1))), RANGES.get(key)  # type: ignore[arg-type]


def _type(key: str, tp: Any) -> str:
    tp = _unwrap(tp)
    choice, rng = _limits(key)
    if get_origin(tp) is Literal:
        choice = get_args(tp)
    if choice:
        return "one of " + ", ".join(f'`"{c}"`' for c in choice)
    if rng and isinstance(rng[0], str):
        return f"duration ({rng[0]} to {rng[1]})" + (" or cron line"
                                                      if key == "connector.schedule" else "")
    if tp is int:
        return f"integer ({rng[0]} to {rng[1]})" if rng else "integer"
    if tp is bool:
        return "boolean"
    if tp is str:
        return "date (YYYY-MM-DD)" if key.endswith("_before") else "string"
    if get_origin(tp) is list:
        return "list of strings"
    if get_origin(tp) is dict:
        return "table of strings"
    if get_origin(tp) in (Union,) or "|" in str(tp):
        return "boolean or path"
    return str(tp)


def _default(f: msgspec.structs.FieldInfo) -> Any:
    if f.default is not msgspec.NODEFAULT:
        return f.default
    if f.default_factory is not msgspec.NODEFAULT:
        return f.default_factory()
    return msgspec.NODEFAULT


def _shown(value: Any) -> str:
    if value is msgspec.NODEFAULT:
        return "**required**"
    if _is_struct(type(value)):
        return ""
    return f"`{json.dumps(msgspec.to_builtins(value), ensure_ascii=False)}`"


def render_markdown() -> str:
    missing = undocumented()
    if missing:
        raise KeyError(f"settings without an entry in adapters/config_reference.py DOCS:"
                       f" {', '.join(missing)}")
    rows: dict[str, list[str]] = {}
    defaults: dict[str, list[tuple[str, str]]] = {}
    types: dict[str, str] = {}
    for doc, key, f, _ in fields():
        kind = key.split(".")[1] if doc != key and KIND in doc else ""
        defaults.setdefault(doc, []).append((kind, _shown(_default(f))))
        types.setdefault(doc, _type(key, f.type))
    for doc, shown in defaults.items():
        section = doc.rsplit(".", 1)[0]
        meaning, example = DOCS[doc]
        if len({value for _, value in shown}) == 1:
            default = shown[0][1]
        else:
            default = "; ".join(f"{kind}: {value}" for kind, value in shown)
        rows.setdefault(section, []).append(
            f"| `{doc}` | {types[doc]} | {default} | {meaning} | `{example}` |")
    out = ["# Configuration reference", "",
           "Generated from the settings (`python -m adapters.config_reference`); every key of",
           "`ml-connector.toml`. Durations are written like `500ms`, `30s`, `15m`, `2h`, `1d`;",
           "relative paths are relative to the config file's folder. Secrets never go in the",
           "file: `ml-connector secrets set NAME`. `ml-connector config show` prints the",
           "effective configuration; `docs/config.schema.json` is its JSON Schema.", ""]
    for section, lines in rows.items():
        out += [f"## [{section}]", "", SECTIONS.get(section, ""), "",
                "| key | type | default | meaning | example |",
                "| --- | --- | --- | --- | --- |", *lines, ""]
    return "\n".join(out)


def json_schema() -> dict[str, Any]:
    schema = msgspec.json.schema(Settings)
    props = schema["$defs"]["Settings"]["properties"]
    props.pop("source", None)
    for doc, key, f, owner in fields():
        prop = schema["$defs"][owner]["properties"][f.name]
        meaning, example = DOCS[doc]
        prop["description"] = meaning
        prop["examples"] = [tomllib.loads(f"x = {example}")["x"]]
        choice, rng = _limits(key)
        if choice:
            prop["enum"] = list(choice)
        elif rng and isinstance(rng[0], str):
            prop["pattern"] = DURATION_PATTERN
            prop["description"] += f" A duration from {rng[0]} to {rng[1]}" + (
                " (or a cron line)." if key == "connector.schedule" else ".")
            if key == "connector.schedule":
                prop.pop("pattern")
        elif rng:
            prop["minimum"], prop["maximum"] = rng
    schema["$defs"]["Settings"]["title"] = "ml-connector configuration"
    return schema


def render_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write_docs(root: Path) -> None:
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "configuration.md").write_text(render_markdown())
    (root / "docs" / "config.schema.json").write_text(render_schema())


if __name__ == "__main__":
    write_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())


# ---------------------------------------------------------------- `config show`

def needed_secrets(settings: Settings) -> list[tuple[str, str]]:
    """(secret name, what it is for) for every secret this configuration uses."""
    out = [("audit.key", "MACs every ledger event (made by `init`)")]
    st = settings.stampli
    if st is not None and st.auth == "key":
        out += [("stampli.private_key", f"SFTP key login as {st.username}@{st.host}"),
                ("stampli.private_key_passphrase", "only if that private key is encrypted")]
    elif st is not None:
        out.append(("stampli.password", f"SFTP password login as {st.username}@{st.host}"))
    if settings.notify is not None:
        out.append(("notify.urls", "where notifications go (apprise URLs)"))
    if settings.ifs is not None:
        out.append(("ifs.client_secret", f"IAM client {settings.ifs.client_id} at"
                                         f" {settings.ifs.base_url}"))
    return out


def effective(settings: Settings, stored: set[str]) -> dict[str, Any]:
    """The configuration in force (every default filled in) and which secrets are set."""
    config = msgspec.to_builtins(settings)
    config.pop("source", None)
    return {"source": settings.source, "config": config,
            "secrets": {name: "<set>" if name in stored else "<missing>"
                        for name, _ in needed_secrets(settings)}}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _toml_key(key: str) -> str:
    plain = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if plain else json.dumps(key, ensure_ascii=False)


def as_toml(shown: dict[str, Any]) -> str:
    """`config show`: the effective configuration as a TOML file would say it."""
    out = [f"# effective configuration of {shown['source'] or '<config>'}"
           " (defaults filled in)"]

    def section(name: str, table: dict[str, Any]) -> None:
        plain = {k: v for k, v in table.items() if not _is_table(k, v, name)}
        out.append(f"\n[{name}]")
        out.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in plain.items())
        for key, value in table.items():
            if _is_table(key, value, name):
                section(f"{name}.{_toml_key(key)}", value)

    for name, table in shown["config"].items():
        if table is not None:
            section(name, table)
    out.append("\n# secrets (ml-connector secrets set NAME)")
    out.extend(f"# {name} = {state}" for name, state in shown["secrets"].items())
    return "\n".join(out) + "\n"


def _is_table(key: str, value: Any, section: str) -> bool:
    """Nested sections ([stampli.invoices], [ifs.posting], [ifs.endpoints.<role>]) as their own
    headers; plain mappings (companies, columns, tax_accounts) inline."""
    return isinstance(value, dict) and (
        key in ("invoices", "vendors", "purchase_orders", "posting")
        or section == "ifs.endpoints" or (section == "ifs" and key == "endpoints"))
