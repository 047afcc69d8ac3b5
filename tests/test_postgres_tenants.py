"""PostgreSQL for several connectors: two tenants in one database, each in its own schema
(`connector.schema`), on the real server at 127.0.0.1:5432; the password is the secret
`ledger.password`, never the TOML; libpq options (sslmode, application_name) are kept."""
from __future__ import annotations

import psycopg
import pytest

from adapters.settings import ConfigError, settings_from_dict
from runtime import Runtime
from tests.fakes import FakeErp, FolderSource
from tests.ledger.conftest import pg_url  # noqa: F401 - fixture
from tests.test_pipeline import SAMPLES, config


def _tenant(tmp_path, url: str, schema: str, files: list[str]) -> Runtime:
    folder = tmp_path / schema
    (folder / "outbound").mkdir(parents=True)
    for name in files:
        (folder / "outbound" / name).write_bytes((SAMPLES / name).read_bytes())
    raw = config(folder, ledger=url + "?sslmode=disable&application_name=mlc_" + schema,
                 schema=schema)
    return Runtime(settings_from_dict(raw), erp=FakeErp(), source=FolderSource(folder / "outbound"))


def test_two_tenants_share_one_database_each_in_its_schema(tmp_path, pg_url):  # noqa: F811
    invoices = "invoices_C1042_20261106152500.csv"
    a = _tenant(tmp_path, pg_url, "tenant_a", ["vendors_C1042_20261106152500.csv", invoices])
    b = _tenant(tmp_path, pg_url, "tenant_b", ["vendors_C1042_20261106152500.csv"])
    try:
        a.secrets.set("ledger.password", "not-in-the-toml")
        assert ":not-in-the-toml@" in a.ledger_connection_url()
        assert a.sync_blocking().errors == [] and b.sync_blocking().errors == []
        a_states = {r["invoice_number"]: r["state"] for r in a.status_rows()}
        assert a_states["INV-2026-0117"] == "posted" and b.status_rows() == []
        with a.projector.store.transaction() as cur:
            assert cur.execute("SELECT current_setting('application_name')").fetchone()[0] \
                == "mlc_tenant_a"
    finally:
        a.close()
        b.close()
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_schema, count(*) FROM information_schema.tables"
                              " WHERE table_schema LIKE 'tenant_%' GROUP BY 1").fetchall()
        events = {schema: conn.execute(f"SELECT count(*) FROM {schema}.ml_connector_events")
                  .fetchone()[0] for schema in ("tenant_a", "tenant_b")}
    assert {schema for schema, n in tables if n >= 4} == {"tenant_a", "tenant_b"}
    assert events["tenant_a"] > events["tenant_b"] > 0
    # a restart of tenant b finds its own ledger, not a's
    b2 = _tenant(tmp_path / "again", pg_url, "tenant_b", [])
    try:
        assert b2.status_rows() == [] and b2.ledger.vendor("V00877") is not None
    finally:
        b2.close()


@pytest.mark.parametrize("connector, message", [
    ({"ledger": "postgresql://mlc:secret@db/ap"}, "secrets set ledger.password"),
    ({"ledger": "postgresql://mlc@db/ap?sslmod=require"}, "not a libpq connection option"),
    ({"ledger": "postgresql://mlc@db/ap", "schema": "Tenant-A"}, "lower-case letters"),
    ({"schema": "tenant_a"}, "for a PostgreSQL ledger")])
def test_postgres_settings_refused_at_load(tmp_path, connector, message):
    raw = config(tmp_path, **connector)
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(raw)
