"""Which way documents are posted to each projection (issue 13), and how that is learned.

"references": one changeset per document whose later parts name the header's ETag as
`If-Match: $n` (IFS; the fewest requests). "portable": the header with its children (a deep
insert, or, where that is refused, the children added afterwards with the header's real ETag),
then the action with the real key and ETag, for servers that refuse `$n` ETag references or
run a changeset's parts in any order. Either way a whole round goes in a few `$batch`
requests, one changeset per document (portable.py). `[ifs] batch_mode` forces one; "auto"
learns from `$metadata` (in `check`) and from the first refusal. What is learned is handed
to the ledger (`learned`) and read back by the next process (`remember`).
"""
from __future__ import annotations

import logging

from adapters.ifs import batch as batchlib
from adapters.ifs.endpoints import Endpoint
from adapters.ifs.errors import is_business_error
from adapters.ifs.metadata import Model
from adapters.ifs.odata import ODataClient
from adapters.settings import IfsSettings

log = logging.getLogger("ml_connector.ifs")


class PostingPaths:
    def __init__(self, odata: ODataClient, settings: IfsSettings,
                 endpoints: dict[str, Endpoint]) -> None:
        self._odata = odata
        self._use_batch = settings.use_batch and settings.batch_mode != "off"
        self.mode = settings.batch_mode
        # Projections posted the portable way, with why (forced, or the server refused `$n`).
        self.portable: dict[str, str] = {}
        if self.mode == "portable":
            self.portable = {endpoints[r].projection: "batch_mode = \"portable\""
                             for r in ("invoice", "voucher")}
        self.declared: set[str] = set()     # projections whose $metadata was consulted
        self.no_deep: set[str] = set()      # projections that refused a deep insert
        self.learned: list[tuple[str, str, str]] = []   # (projection, path, why) to record

    def mark_portable(self, projection: str, why: str) -> None:
        self.portable[projection] = why
        path = "portable-no-deep-insert" if projection in self.no_deep else "portable"
        self.learned.append((projection, path, why))

    def remember(self, projection: str, path: str, why: str) -> None:
        """A path an earlier process learned (from the ledger); configured modes win."""
        if self.mode != "auto" or not path.startswith("portable"):
            return
        self.portable[projection] = why
        if path == "portable-no-deep-insert":
            self.no_deep.add(projection)

    async def consult_metadata(self, projection: str) -> None:
        """In "auto" mode, once per projection: a service that declares (Capabilities
        vocabulary) that If-Match cannot name `$n` goes the portable way without a refusal.
        Called by `check`, which reads $metadata anyway; posting never spends a request on it
        (the references path keeps its request count) and learns from a refusal instead."""
        if self.mode != "auto" or projection in self.declared or projection in self.portable:
            return
        self.declared.add(projection)
        try:
            declared = Model(await self._odata.metadata(projection)).batch_support
        except Exception as exc:  # noqa: BLE001 - unreadable: learn from a refusal instead
            log.info("IFS $metadata of %s not read for batch capabilities (%s)", projection, exc)
            return
        if declared.get("EtagReferencesSupported") is False:
            self.mark_portable(projection, "its $metadata declares Capabilities.BatchSupport "
                                       "EtagReferencesSupported = false")

    def path_of(self, projection: str) -> tuple[str, str]:
        """(path, why) for `check`."""
        if not self._use_batch:
            return "off", "no $batch (`batch_mode = \"off\"` or `use_batch = false`): one "\
                          "request per write"
        if projection in self.portable:
            return "portable", self.portable[projection]
        if self.mode == "references":
            return "references", "batch_mode = \"references\""
        return "references", ("batch_mode = \"auto\": one changeset with If-Match `$n` "
                              "references until the server refuses them")

    def refused_deep_insert(self, projection: str, err: batchlib.Response,
                            cs: batchlib.Changeset, child: str) -> bool:
        """A 400 that names no business rule for a header sent with its children inline: the
        server does not take deep inserts here. From now on the header goes alone and the
        children follow with the header's real ETag (portable.Settler, a round at a time)."""
        if err.status != 400 or is_business_error(err.body):
            return False
        if child not in (cs.operations[0].body or {}):
            return False                     # it went without children already
        if projection in self.no_deep:
            return True                      # a neighbour in the same $batch taught it
        self.no_deep.add(projection)
        if projection in self.portable:      # not when "references" only re-sent one document
            self.mark_portable(projection, self.portable[projection] +
                           "; no deep insert (refused): children added after the header")
        log.warning("IFS projection %s refused a deep insert of %s; adding them after the "
                    "header", projection, child)
        return True

    def refused_references(self, projection: str, err: batchlib.Response,
                           cs: batchlib.Changeset) -> bool:
        """A 412 on a changeset that used `$n` in If-Match: the server does not take ETag
        references (or the ETag changed meanwhile). Nothing of it was applied (a changeset is
        atomic), so the document goes again at once the portable way, which uses the real ETag
        and re-reads on a 412 (bounded). In "auto" mode that projection stays portable."""
        if err.status != 412 or not any(op.if_match.startswith("$") for op in cs.operations):
            return False
        if self.mode != "auto":
            return True
        self.mark_portable(projection, "the server refused an If-Match `$n` reference (HTTP 412): "
                                   "header and lines first, then the action with the real "
                                   "ETag")
        log.warning("IFS projection %s refused If-Match references in a $batch; posting it "
                    "the portable way from now on", projection)
        return True
