"""Ledger backends for the contract suite: a SQLite file, and a fresh PostgreSQL database
per test on the real server at 127.0.0.1:5432."""
from __future__ import annotations

import uuid

import pytest

from tests.services import require_service

PG_HOST, PG_PORT = "127.0.0.1", 5432


def _pg_admin():
    import psycopg

    last = None
    for user in ("postgres", "root"):
        try:
            return psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="postgres",
                                   autocommit=True, connect_timeout=5), user
        except psycopg.OperationalError as exc:
            last = exc
    raise last  # type: ignore[misc]


@pytest.fixture
def pg_url():
    """A throwaway database; dropped afterwards."""
    try:
        admin, user = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        require_service(False, f"PostgreSQL on {PG_HOST}:{PG_PORT} ({exc.__class__.__name__})",
                        "start it with `pg_ctlcluster --skip-systemctl-redirect"
                        " $(ls /etc/postgresql) main start` or run `make test`")
    name = f"mlc_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"
