"""Every numeric setting and duration has a range, checked at load in one table: a value out
of it stops the program with the file, the key, the value and the allowed range (exit 2)."""
from __future__ import annotations

import copy

import msgspec
import pytest

from adapters import settings as config
from adapters.settings import RANGES, ConfigError, parse_duration, settings_from_dict
from tests.installed_cli import run_cli

BASE = {"connector": {"company": "10"}, "stampli": {"host": "h", "username": "u"},
        "ifs": {"base_url": "https://ifs.invalid"}}


def _with(key: str, value) -> dict:
    raw = copy.deepcopy(BASE)
    *path, name = key.split(".")
    part = raw
    for step in path:
        part = part.setdefault(step, {})
    part[name] = value
    return raw


def _outside(low, high) -> list:
    if isinstance(low, int):
        return [low - 1, high + 1]
    above = [f"{parse_duration(high) + 1:g}s"]
    return ([f"{parse_duration(low) / 2:g}s"] if parse_duration(low) > 0 else []) + above


@pytest.mark.parametrize("key", list(RANGES))
def test_every_range_holds_its_ends_and_refuses_beyond(key):
    low, high = RANGES[key]
    for value in (low, high):
        settings_from_dict(_with(key, value), source="c.toml")
    for value in _outside(low, high):
        with pytest.raises(ConfigError) as caught:
            settings_from_dict(_with(key, value), source="c.toml")
        message = str(caught.value)
        assert message.startswith("c.toml: ") and f"`{key}` = {value!r}" in message
        assert f"allowed {low} to {high}" in message


def _fields(struct, prefix=""):
    for field in msgspec.structs.fields(struct):
        key = f"{prefix}{field.name}"
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            yield from _fields(field.type, key + ".")
        elif field.type in (int, float):
            yield key
        elif field.type is str and isinstance(field.default, str):
            try:
                parse_duration(field.default)
            except ValueError:
                continue
            yield key


def test_no_numeric_setting_or_duration_without_a_range():
    numeric = set()
    for section, struct in (("connector", config.ConnectorSettings),
                            ("stampli", config.StampliSettings), ("ifs", config.IfsSettings),
                            ("web", config.WebSettings), ("notify", config.NotifySettings)):
        numeric |= set(_fields(struct, section + "."))
    assert numeric - set(RANGES) == set(), "add a row to adapters.settings.RANGES"
    assert set(RANGES) - numeric == set(), "a row in RANGES for a setting that is not there"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranges")
    assert run_cli("init", cwd=path).returncode == 0
    return path


@pytest.mark.parametrize("line,value,expected", [
    ('schedule = "15m"', 'schedule = "0s"', "`connector.schedule` = '0s' is out of range:"
     " allowed 1s to 7d (or a cron line)"),
    ("port = 22", "port = 70000", "`stampli.port` = 70000 is out of range: allowed 1 to 65535"),
    ("max_attempts = 8", "max_attempts = -3",
     "`connector.max_attempts` = -3 is out of range: allowed 1 to 100"),
])
def test_the_issues_values_are_refused_by_the_command(project, line, value, expected):
    template = (project / "ml-connector.toml").read_text()
    assert line in template
    (project / "bad.toml").write_text(template.replace(line, value, 1))
    result = run_cli("--config", "bad.toml", "status", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"Error: bad.toml: {expected}"
