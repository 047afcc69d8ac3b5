"""The configuration reference: every settings field is documented (type, default, meaning,
example), docs/configuration.md and docs/config.schema.json are current, and `config show`
prints the effective configuration with secrets as <set>/<missing>."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from adapters import config_reference as ref
from adapters.settings import settings_from_dict
from tests.installed_cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "regenerate with `python -m adapters.config_reference`"


def test_every_settings_field_is_documented():
    assert ref.undocumented() == [], "add these keys to DOCS in adapters/config_reference.py"
    text = (ROOT / "docs" / "configuration.md").read_text()
    for doc, *_ in ref.fields():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{doc}` |"))
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 5 and all(cells), row       # key, type, default, meaning, example


def test_a_new_field_without_an_entry_is_caught(monkeypatch):
    docs = dict(ref.DOCS)
    del docs["ifs.retries"]
    monkeypatch.setattr(ref, "DOCS", docs)
    assert ref.undocumented() == ["ifs.retries"]


def test_the_published_reference_and_schema_are_current():
    assert (ROOT / "docs" / "configuration.md").read_text() == ref.render_markdown(), REGENERATE
    assert (ROOT / "docs" / "config.schema.json").read_text() == ref.render_schema(), REGENERATE


def test_every_documented_example_is_a_valid_value():
    base = {"connector": {"company": "10"}, "stampli": {"host": "h", "username": "u"},
            "ifs": {"base_url": "https://ifs.invalid"}}
    for doc, key, _, _ in ref.fields():
        if key in ("ifs.verify_tls", "connector.schedule") or ref.ROLE in key:
            continue                    # a CA file that must exist; cron and roles apart
        raw = json.loads(json.dumps(base))
        *path, name = key.split(".")
        part = raw
        for step in path:
            part = part.setdefault(step, {})
        part[name] = tomllib.loads(f"x = {ref.DOCS[doc][1]}")["x"]
        if key == "connector.schema":                     # a PostgreSQL setting
            raw["connector"]["ledger"] = "postgresql://mlc@db.internal:5432/ap"
        settings_from_dict(raw, source="example.toml")


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "ml-connector.toml"
    config.write_text('[connector]\ncompany = "10"\nretry_base = "5s"\n'
                      '[stampli]\nhost = "sftp.example.com"\nusername = "acme"\nauth = "key"\n'
                      '[ifs]\nbase_url = "https://ifs.example.com"\n'
                      '[ifs.posting]\ntax_accounts = { TX8 = "2640" }\n')
    return config


def test_config_show_fills_defaults_and_shows_secrets_as_set_or_missing(tmp_path):
    config = _config(tmp_path)
    assert run_cli("--config", str(config), "secrets", "set", "ifs.client_secret",
                   cwd=tmp_path, input="s3cr3t-value\n").returncode == 0
    result = run_cli("--config", str(config), "config", "show", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["config"]["connector"]["retry_base"] == "5s"
    assert shown["config"]["connector"]["retry_max"] == "1h"                 # a default
    assert shown["config"]["stampli"]["invoices"]["approved_statuses"] == ["Approved"]
    assert shown["secrets"]["ifs.client_secret"] == "<set>"
    assert shown["secrets"]["stampli.private_key"] == "<missing>"
    assert "s3cr3t-value" not in result.stdout
    text = run_cli("--config", str(config), "config", "show", cwd=tmp_path).stdout
    assert "# ifs.client_secret = <set>" in text and "s3cr3t-value" not in text
    # the text form is itself a valid configuration saying the same
    again = settings_from_dict(tomllib.loads(text), source=str(config))
    assert ref.effective(again, set())["config"] == shown["config"]


def test_durations_are_decoded_when_the_config_loads():
    from adapters.settings import parse_duration

    parse_duration.cache_clear()
    settings_from_dict({"connector": {"company": "10", "retry_base": "7s"},
                        "ifs": {"base_url": "https://ifs.invalid", "timeout": "42s"}})
    decoded = parse_duration.cache_info().currsize
    assert decoded >= 2
    parse_duration("7s"), parse_duration("42s")
    assert parse_duration.cache_info().currsize == decoded          # nothing parsed again
