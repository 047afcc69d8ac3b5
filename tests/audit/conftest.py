"""The ledger backends (a SQLite file; a fresh PostgreSQL database per test), shared with the
ledger contract suite."""
from tests.ledger.conftest import pg_url, sqlite_url  # noqa: F401  (pytest fixtures)
