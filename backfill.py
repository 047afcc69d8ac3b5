"""`ml-connector ingest FILE...`: local export files recorded exactly as a poll of Stampli's
SFTP folder records them (same poller, same identity and dedupe, same kept copy), for a
migration or a file received by email. The next `sync` moves their invoices on."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ledger.ports import SourceError
from ledger.poller import Poller, PollSettings
from projections.queue import ProjectionQueue
from runtime import Runtime


def ingest_files(rt: Runtime, paths: list[Path]) -> dict[str, Any]:
    from adapters.stampli.configured import ConfiguredReaders
    from adapters.stampli.local_files import LocalFiles

    st, c = rt.settings.stampli, rt.settings.connector
    if st is None:
        raise SourceError("no [stampli] section in the config: it says how to read the"
                          " export files", transient=False)
    readers = ConfiguredReaders(st, c.company)
    for path in paths:
        if not path.is_file():
            raise SourceError(f"{path}: no such file", transient=False)
        if readers.kind_of(path.name) is None:
            raise SourceError(f"{path.name}: not a Stampli export name this config reads"
                              f" (patterns {', '.join(readers.patterns())}); rename it as"
                              " Stampli names its exports", transient=False)
    poller = Poller(rt.ledger, LocalFiles([p.resolve() for p in paths]), readers,
                    ProjectionQueue(rt.projector),
                    PollSettings(source_name="local:" + ", ".join(str(p) for p in paths),
                                 min_file_age=float("-inf"), stable_wait=0.0,
                                 download_dir=rt.settings.data_dir / "files", archive_dir="",
                                 approved_statuses=st.invoices.approved_statuses))
    result = asyncio.run(poller.poll())
    return {"taken": [{k: len(v) if isinstance(v, list) and k != "failed" else v
                       for k, v in t.items()} for t in result.taken],
            "skipped": result.skipped, "errors": result.errors}
