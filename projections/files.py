"""Export files and vendors as the poller and the vendor sync need them: which files were
already taken (name, size, mtime, sha256) and which vendors changed since their last sync."""
from __future__ import annotations

from projections.base import LedgerEvent, Projection
from projections.store import Cursor

FILES = "mlc_export_files"
VENDORS = "mlc_vendors"
POLL_RUNS = "mlc_poll_runs"
FILE_DETAILS = "mlc_file_details"


class FilesProjection(Projection):
    name = "files"
    topic_prefix = "ml_connector.file."
    tables = (FILES,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {FILES} (id TEXT PRIMARY KEY, name TEXT, kind TEXT,"
           " size INTEGER, mtime DOUBLE PRECISION, sha256 TEXT, outcome TEXT, archived INTEGER,"
           " recorded_at TEXT)",
           f"CREATE INDEX IF NOT EXISTS {FILES}_name ON {FILES} (name)",
           f"CREATE INDEX IF NOT EXISTS {FILES}_recorded ON {FILES} (recorded_at)")

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        for e in events:
            if e.type == "Downloaded":
                d = e.data
                cur.execute(f"INSERT INTO {FILES} VALUES (?, ?, ?, ?, ?, ?, '', 0, ?)"
                            " ON CONFLICT (id) DO NOTHING",
                            (e.stream_id, d["name"], d["kind"], d["size"], d["mtime"],
                             d["sha256"], e.recorded_at))
            elif e.type in ("Parsed", "Rejected", "Reopened"):
                cur.execute(f"UPDATE {FILES} SET outcome = ? WHERE id = ?",
                            (e.type.lower(), e.stream_id))
            elif e.type == "Archived":
                cur.execute(f"UPDATE {FILES} SET archived = 1 WHERE id = ?", (e.stream_id,))


def _detail(e: LedgerEvent) -> str:
    """What the workspace's Files page says about the outcome, in one line."""
    d = e.data
    if e.type == "Rejected":
        where = f"line {d.get('line')}: " if d.get("line") else ""
        return f"{where}{d.get('reason', '')}"
    if e.type == "Parsed":
        rows = len(d.get("rejected_rows") or [])
        records = d.get("records", 0)
        return (f"{records} record{'' if records == 1 else 's'}: {d.get('invoices_new', 0)} new,"
                f" {d.get('duplicates', 0)} duplicates, {d.get('amendments', 0)} amendments"
                + (f", {rows} rows not recorded" if rows else ""))
    return str(d.get("reason", ""))


class FileDetailsProjection(Projection):
    """The last outcome of each export file in words (its own view, so that a ledger kept
    from before it fills it on the first catch-up)."""
    name = "file_details"
    topic_prefix = "ml_connector.file."
    tables = (FILE_DETAILS,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {FILE_DETAILS} (id TEXT PRIMARY KEY, detail TEXT)",)

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        for e in events:
            if e.type in ("Parsed", "Rejected", "Reopened"):
                cur.execute(f"INSERT INTO {FILE_DETAILS} VALUES (?, ?) ON CONFLICT (id) DO"
                            " UPDATE SET detail = excluded.detail", (e.stream_id, _detail(e)))


class PollRunsProjection(Projection):
    """Every polling attempt: when, where, how many files listed and taken, what failed."""
    name = "poll_runs"
    topic_prefix = "ml_connector.poll."
    tables = (POLL_RUNS,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {POLL_RUNS} (id TEXT PRIMARY KEY, source TEXT,"
           " started_at TEXT, ended_at TEXT, listed INTEGER, taken INTEGER, skipped INTEGER,"
           " errors TEXT)",
           f"CREATE INDEX IF NOT EXISTS {POLL_RUNS}_started ON {POLL_RUNS} (started_at)")

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        for e in events:
            d = e.data
            if e.type == "Started":
                cur.execute(f"INSERT INTO {POLL_RUNS} VALUES (?, ?, ?, '', 0, 0, 0, '')"
                            " ON CONFLICT (id) DO NOTHING",
                            (e.stream_id, d["source"], d["started_at"]))
            elif e.type == "Finished":
                cur.execute(f"UPDATE {POLL_RUNS} SET ended_at = ?, listed = ?, taken = ?,"
                            " skipped = ?, errors = ? WHERE id = ?",
                            (d["ended_at"], len(d["listed"]), len(d["taken"]),
                             len(d["skipped"]), "; ".join(d["errors"]), e.stream_id))


class VendorsProjection(Projection):
    name = "vendors"
    topic_prefix = "ml_connector.vendor."
    tables = (VENDORS,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {VENDORS} (id TEXT PRIMARY KEY, vendor_id TEXT,"
           " supplier_id TEXT, needs_sync INTEGER, last_event TEXT, updated_at TEXT)",)

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        for e in events:
            if e.type == "Seen":
                cur.execute(f"INSERT INTO {VENDORS} VALUES (?, ?, '', 1, ?, ?)"
                            " ON CONFLICT (id) DO NOTHING",
                            (e.stream_id, e.data["vendor_id"], e.type, e.recorded_at))
            elif e.type == "Changed":
                cur.execute(f"UPDATE {VENDORS} SET needs_sync = 1, last_event = ?,"
                            " updated_at = ? WHERE id = ?", (e.type, e.recorded_at, e.stream_id))
            elif e.type == "Synced":
                cur.execute(f"UPDATE {VENDORS} SET needs_sync = 0, supplier_id = ?,"
                            " last_event = ?, updated_at = ? WHERE id = ?",
                            (e.data["supplier_id"], e.type, e.recorded_at, e.stream_id))
            elif e.type == "SyncFailed":
                cur.execute(f"UPDATE {VENDORS} SET last_event = ?, updated_at = ? WHERE id = ?",
                            (e.type, e.recorded_at, e.stream_id))
