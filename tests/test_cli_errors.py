"""Hostile and unlucky inputs through the installed `ml-connector` command: a broken master key
or secrets file, a config that is a folder or not UTF-8, an unknown ledger URL, an unwritable
export path, a non-UTF-8 argument. Each gets one line saying what is wrong and what to do, the
right exit code (2 configuration, 1 runtime), and never a traceback."""
from __future__ import annotations

import os
import shutil

import pytest
from cryptography.fernet import Fernet

from tests.installed_cli import run_cli


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """One `init` and one stored secret, copied for each test (two processes fewer each)."""
    path = tmp_path_factory.mktemp("initialised")
    result = run_cli("init", cwd=path)
    assert result.returncode == 0, result.stderr
    stored = run_cli("secrets", "set", "ifs.client_secret", cwd=path, input="s3cret-Val")
    assert stored.returncode == 0, stored.stderr
    return path


@pytest.fixture
def project(initialised, tmp_path):
    shutil.copytree(initialised, tmp_path / "p")
    return tmp_path / "p"


def one_line_error(result, code: int) -> str:
    """The process exited `code` with exactly one non-empty line on stderr, and no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert "s3cret-Val" not in result.stderr + result.stdout
    return lines[0]


def _no_key(data):
    (data / "master.key").unlink()


def _key_is_a_folder(data):
    (data / "master.key").unlink()
    (data / "master.key").mkdir()


def _key_is_garbage(data):
    (data / "master.key").write_text("not a key\n")


def _key_is_empty(data):
    (data / "master.key").write_text("")


def _key_is_another(data):
    (data / "master.key").write_bytes(Fernet.generate_key())


KEY_FAULTS = {
    "missing": (_no_key, ["master.key", "ML_CONNECTOR_MASTER_KEY", "restore"]),
    "a folder": (_key_is_a_folder, ["master.key", "not a file"]),
    "garbage": (_key_is_garbage, ["master.key", "not a valid Fernet key"]),
    "empty": (_key_is_empty, ["master.key", "empty"]),
    "another key": (_key_is_another, ["secrets.enc", "does not open with the master key"]),
}


@pytest.mark.parametrize("fault", list(KEY_FAULTS))
@pytest.mark.parametrize("command", [["secrets", "list"], ["sync"]])
def test_a_broken_master_key_is_one_line_and_exit_2(project, fault, command):
    breaks, words = KEY_FAULTS[fault]
    breaks(project / "data")
    line = one_line_error(run_cli(*command, cwd=project), 2)
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("fault", list(KEY_FAULTS))
def test_secrets_set_never_replaces_a_key_it_cannot_use(project, fault):
    data = project / "data"
    before = (data / "secrets.enc").read_bytes()
    KEY_FAULTS[fault][0](data)
    kept = sorted(p.name for p in data.iterdir())
    result = run_cli("secrets", "set", "stampli.password", cwd=project, input="other-value")
    one_line_error(result, 2)
    assert (data / "secrets.enc").read_bytes() == before       # nothing lost
    assert sorted(p.name for p in data.iterdir()) == kept       # no new master key beside it


def _truncate(path):
    path.write_bytes(path.read_bytes()[:40])


SECRETS_FAULTS = {
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "truncated": (_truncate, "is damaged"),
    "junk": (lambda p: p.write_bytes(b"\x00\xffjunk" * 30), "is damaged"),
    "a folder": (lambda p: (p.unlink(), p.mkdir()), "not a file"),
}


@pytest.mark.parametrize("fault", list(SECRETS_FAULTS))
def test_a_damaged_secrets_file_is_named_with_what_to_do(project, fault):
    breaks, words = SECRETS_FAULTS[fault]
    breaks(project / "data" / "secrets.enc")
    line = one_line_error(run_cli("secrets", "list", cwd=project), 2)
    assert "secrets.enc" in line and words in line, line
    assert "secrets set" in line or "backup" in line, line


def test_config_naming_a_folder(project):
    (project / "conf.d").mkdir()
    line = one_line_error(run_cli("--config", "conf.d", "status", cwd=project), 2)
    assert "conf.d" in line and "is a folder" in line, line


def test_config_that_is_not_utf8_names_the_line(project):
    config = project / "ml-connector.toml"
    text = config.read_text().replace('company = "10"', 'company = "M\xfcller"')
    config.write_bytes(text.encode("latin-1"))
    line = one_line_error(run_cli("status", cwd=project), 2)
    assert "ml-connector.toml" in line and "line 6" in line and "UTF-8" in line, line


def test_an_unknown_ledger_url_is_a_config_error(project):
    config = project / "ml-connector.toml"
    config.write_text(config.read_text().replace('ledger = "sqlite:///data/ledger.db"',
                                                 'ledger = "mysql://ap:pw@db/ledger"'))
    line = one_line_error(run_cli("status", cwd=project), 2)
    assert "connector.ledger" in line and "postgresql://" in line and "ml-connector.toml" in line
    assert "pw" not in line.replace("mysql://ap@db", "")


def test_a_missing_ifs_section_is_a_config_error(project):
    config = project / "ml-connector.toml"
    kept, in_ifs = [], False
    for line in config.read_text().splitlines():
        if line.startswith("["):
            in_ifs = line.split("]")[0] in ("[ifs", "[ifs.posting")
        if not in_ifs:
            kept.append(line)
    config.write_text("\n".join(kept) + "\n")
    assert "[ifs" not in config.read_text()
    line = one_line_error(run_cli("sync", cwd=project), 2)      # 2: as every config error
    assert line == "Error: no [ifs] section in the config", line


def test_audit_export_to_a_missing_folder(project):
    line = one_line_error(run_cli("audit", "export", "-o", "/nonexistent/x", cwd=project), 1)
    assert "/nonexistent/x" in line and "No such file or directory" in line, line


@pytest.mark.parametrize("args", [["replay", b"V1/\xff\xfe"], ["history", b"\xff"],
                                  ["--config", b"conf\xff.toml", "status"]])
def test_a_non_utf8_argument(project, args):
    args = [os.fsdecode(a) if isinstance(a, bytes) else a for a in args]
    line = one_line_error(run_cli(*args, cwd=project), 2)
    assert "not valid UTF-8" in line and "\\xff" in line, line


def test_an_unexpected_error_is_one_line_without_traceback(project):
    shutil.rmtree(project / "data")
    (project / "data").write_text("a file where the data folder should be")
    result = run_cli("status", cwd=project)
    assert "Traceback" not in result.stderr and result.returncode in (1, 2)
    assert "data/ledger.db: Not a directory; check that path" in result.stderr


def test_a_bug_is_one_line_and_the_traceback_only_with_vv(project, monkeypatch):
    from click.testing import CliRunner

    from cli import main
    from runtime import Runtime

    def broken(self, state=None):
        raise KeyError("state")
    monkeypatch.chdir(project)
    monkeypatch.setattr(Runtime, "status_rows", broken)
    result = CliRunner().invoke(main, ["status"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: unexpected error (KeyError: 'state'); this is a"
                                     " bug: run again with -vv to see where, and report it")
