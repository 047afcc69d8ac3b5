"""The audit chain and event MAC contracts on each backend."""
from __future__ import annotations

import pytest

from tests.audit.contract import AuditContract
from tests.audit.mac_contract import MacContract


class TestSqliteAudit(AuditContract):
    @pytest.fixture
    def url(self, sqlite_url):
        return sqlite_url


@pytest.mark.postgres
class TestPostgresAudit(AuditContract):
    @pytest.fixture
    def url(self, pg_url):
        return pg_url


class TestSqliteMacs(MacContract):
    @pytest.fixture
    def url(self, sqlite_url):
        return sqlite_url


@pytest.mark.postgres
class TestPostgresMacs(MacContract):
    @pytest.fixture
    def url(self, pg_url):
        return pg_url
