"""The ledger backends (a SQLite file; a fresh PostgreSQL database per test), shared with the
ledger contract suite, and an initialised install for the CLI tests."""
import pytest

from adapters.secrets import MASTER_KEY_ENV
from tests.audit.cli_world import run, write_invoices
from tests.ledger.conftest import pg_url, sqlite_url  # noqa: F401  (pytest fixtures)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def project(request, tmp_path, monkeypatch):
    """An initialised install: P-1 posted to IFS, P-2 awaiting approval (Pending)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    assert run("init").exit_code == 0
    config = tmp_path / "ml-connector.toml"
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        config.write_text(config.read_text().replace('ledger = "sqlite:///data/ledger.db"',
                                                      f'ledger = "{url}"', 1))
    write_invoices(config)
    return config
