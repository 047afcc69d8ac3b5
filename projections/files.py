"""Export files and vendors as the poller and the vendor sync need them: which files were
already taken (name, size, mtime, sha256) and which vendors changed since their last sync."""
from __future__ import annotations

from projections.base import LedgerEvent, Projection
from projections.store import Cursor

FILES = "mlc_export_files"
VENDORS = "mlc_vendors"


class FilesProjection(Projection):
    name = "files"
    topic_prefix = "ml_connector.file."
    tables = (FILES,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {FILES} (id TEXT PRIMARY KEY, name TEXT, kind TEXT,"
           " size INTEGER, mtime DOUBLE PRECISION, sha256 TEXT, outcome TEXT, archived INTEGER,"
           " recorded_at TEXT)",
           f"CREATE INDEX IF NOT EXISTS {FILES}_name ON {FILES} (name)")

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
