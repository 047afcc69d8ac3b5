"""`ml-connector backup FILE`: a consistent copy of a SQLite ledger (events and the read models
beside them) taken with SQLite's online backup API, while the daemon keeps running: one step
reads one snapshot (WAL lets writers go on meanwhile). Written beside FILE, then renamed, 0600
(vendor tax ids). PostgreSQL has its own tools: pg_dump."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ledger.errors import LedgerError
from ledger.persistence import redact_url


def backup_sqlite(url: str, target: Path) -> int:
    """Copy the ledger at `url` to `target`. -> the copy's size in bytes."""
    if not url.startswith("sqlite:///"):
        raise LedgerError(f"the ledger is PostgreSQL ({redact_url(url)}): back it up with"
                          " PostgreSQL's own tools, e.g. `pg_dump --format=custom --file"
                          f" {target} DBNAME` (add --schema for a tenant's schema)")
    source_path = url[len("sqlite:///"):]
    if not Path(source_path).is_file():
        raise LedgerError(f"no ledger at {source_path}: nothing to back up")
    if target.exists():
        raise LedgerError(f"{target} already exists; give a new file name (a backup never"
                          " overwrites)")
    tmp = target.with_name(target.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(tmp)
    try:
        source.backup(dest)                # pages=-1: the whole database from one snapshot
        dest.execute("PRAGMA journal_mode=DELETE")       # one self-contained file
        check = dest.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        dest.close()
        tmp.unlink(missing_ok=True)
        raise LedgerError(f"backup to {target} failed: {exc}") from None
    finally:
        source.close()
    dest.close()
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise LedgerError(f"the copy failed SQLite's integrity check ({check}); nothing kept")
    os.replace(tmp, target)
    return target.stat().st_size
