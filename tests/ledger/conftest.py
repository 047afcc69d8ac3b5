"""Ledger backends for the contract suite: a SQLite file, and a fresh PostgreSQL database
per test on the real server at 127.0.0.1:5432."""
from __future__ import annotations

import pytest

from bench.common import PG_HOST, PG_PORT, Unavailable, pg_database
from tests.services import require_service


@pytest.fixture
def pg_url():
    """A throwaway database; dropped afterwards."""
    database = pg_database(prefix="mlc_test")
    try:
        url = database.__enter__()
    except Unavailable as exc:
        require_service(False, f"PostgreSQL on {PG_HOST}:{PG_PORT} ({exc})",
                        "start it with `pg_ctlcluster --skip-systemctl-redirect"
                        " $(ls /etc/postgresql) main start` or run `make test`")
    try:
        yield url
    finally:
        database.__exit__(None, None, None)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"
