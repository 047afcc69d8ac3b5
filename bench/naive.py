"""The naive posting plan, the baseline of the posting figures: no `$batch`
(`ifs.use_batch = false`, the adapter's own switch) and one GET before every write.

The IFS adapter has no switch for "read before write" (it never needs one: a write's answer
carries the ETag the next write uses), so the bench emulates it here by wrapping the OData
client's `write` of one IfsErp instance: before each POST/PATCH/action it GETs the entity it
writes to (the parent of a child collection or bound action), or the first row of the
entity set for a create. Nothing in the project changes.
"""
from __future__ import annotations

from typing import Any

from adapters.ifs.client import IfsErp


def read_target(path: str) -> tuple[str, dict[str, str]]:
    """The GET a naive integration sends before writing to `path`."""
    head = path.split("/", 1)[0]
    if "(" in head:                       # Set(keys)[/child or /action]: read the entity
        return head, {}
    return head, {"$top": "1"}            # a create: read the collection


def read_before_every_write(erp: IfsErp) -> IfsErp:
    odata = erp.odata
    write = odata.write
    odata.naive_reads = 0

    async def write_after_read(method: str, projection: str, path: str,
                               body: dict[str, Any] | None, **kwargs: Any) -> Any:
        target, params = read_target(path)
        await odata.send("GET", odata.url(projection, target, params or None),
                         what=f"reading {target} before writing it (naive plan)",
                         projection=projection, ok_statuses=(404,))
        odata.naive_reads += 1
        return await write(method, projection, path, body, **kwargs)

    odata.write = write_after_read        # one instance only: the bench's naive erp
    return erp
