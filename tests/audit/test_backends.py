"""The audit chain contract on each backend."""
from __future__ import annotations

import pytest

from tests.audit.contract import AuditContract


class TestSqliteAudit(AuditContract):
    @pytest.fixture
    def url(self, sqlite_url):
        return sqlite_url


@pytest.mark.postgres
class TestPostgresAudit(AuditContract):
    @pytest.fixture
    def url(self, pg_url):
        return pg_url
