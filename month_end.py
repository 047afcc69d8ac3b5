"""The month-end close's use cases on the runtime: `reconcile` (the period's approved
invoices against the ledger and against what IFS holds now) and the notifications the daemon
sends after a cycle and between cycles. A mixin of `runtime.Runtime`, which provides
`settings`, `ledger`, `projector`, `secrets` and `erp()`; kept apart so runtime.py stays the
wiring."""
from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from adapters.settings import parse_duration
from ledger.errors import LedgerError
from ledger.ports import ErpFailure


class MonthEndClose:
    settings: Any
    ledger: Any
    projector: Any
    secrets: Any

    def erp(self) -> Any:  # pragma: no cover - the runtime's
        raise NotImplementedError

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, period: Any, fmt: str) -> tuple[dict[str, Any], str]:
        """Compare the period's approved invoices, the ledger's outcome and what IFS holds
        now (read-only); record the run as a ReconciliationRun. Returns (report, rendered)."""
        import hashlib

        from ledger import __version__
        from ledger.reconciliation import Reconciliation
        from projections import reconcile as rec
        from projections.reconcile_report import build, render

        self.projector.catch_up()
        st = self.settings.stampli
        approved = frozenset(st.invoices.approved_statuses if st else ("Approved",))
        invoices = rec.period_invoices(self.ledger, self.projector.store, period,
                                       approved.__contains__)
        expect_voucher = self.settings.ifs is not None and self.settings.ifs.posting.post_voucher
        docs, requests, read = asyncio.run(self._read_ifs_period(period, invoices,
                                                                 expect_voucher))
        items = rec.compare(invoices, docs, self._known_ids, expect_voucher)
        counts, totals = rec.summarize(items)
        meta = {"company": period.company, "period_from": period.first.isoformat(),
                "period_to": period.last.isoformat(), "by": period.by,
                "timezone": str(period.tz), "generated_at": datetime_now(),
                "connector_version": __version__, "ifs_requests": requests,
                "ifs_documents": read[0], "ifs_vouchers": read[1]}
        report = build(meta, counts, totals, items)
        text = render(report, fmt)
        self.ledger.record(Reconciliation.run(
            company=period.company, period_from=meta["period_from"],
            period_to=meta["period_to"], by=period.by, counts=counts,
            totals=[t for t in totals if t["category"] != rec.MATCHED] or [],
            ifs_requests=requests, report_format=fmt,
            report_sha256=hashlib.sha256(text.encode()).hexdigest(), ok=report["ok"]))
        return report, text

    def _known_ids(self, ids: list[str]) -> set[str]:
        valid = []
        for ref in ids:
            try:
                valid.append(UUID(ref))
            except ValueError:
                continue
        return {str(i) for i in self.ledger.recorded(valid)}

    async def _read_ifs_period(self, period: Any, invoices: dict[str, dict[str, Any]],
                               expect_voucher: bool) -> tuple[Any, int, tuple[int, int]]:
        from adapters.ifs.reconcile import IfsPeriodReader
        from projections.reconcile import Documents, invoice_date_window

        erp = self.erp()
        reader = IfsPeriodReader(erp)
        first, last = invoice_date_window(invoices, period)
        before = reader.requests
        try:
            found = await reader.invoices(period.company, first, last)
            vouchers = await reader.vouchers(period.company, first, last) if expect_voucher \
                else []
            docs = Documents(found, vouchers)
            posted = [i for i, inv in invoices.items()
                      if (inv.get("status") or {}).get("state") == "posted"]
            extra = await reader.invoices_by_ref(
                period.company, [i for i in posted if i not in docs.invoices])
            extra_v = await reader.vouchers_by_ref(
                period.company, [i for i in posted if i not in docs.vouchers]) \
                if expect_voucher else []
            docs.add(extra, extra_v)
        except ErpFailure as exc:
            raise LedgerError(f"reading IFS for the reconciliation failed: {exc}; nothing was"
                              " recorded, run it again once IFS answers") from None
        finally:
            await erp.close()
        return (docs, reader.requests - before,
                (len(found) + len(extra), len(vouchers) + len(extra_v)))

    # ------------------------------------------------------------------ notifications

    def notifications(self) -> Any:
        """The notifier when `[notify]` is configured and `notify.urls` holds a destination."""
        if getattr(self, "_notices", None) is not None or self.settings.notify is None:
            return getattr(self, "_notices", None)
        from datetime import datetime, time, timezone
        from zoneinfo import ZoneInfo

        from adapters.notify import AppriseSender, parse_urls
        from ledger.notices import Notifications, Policy

        urls = parse_urls(self.secrets.get("notify.urls") or "")
        if not urls:
            return None
        n = self.settings.notify
        hour, minute = (int(x) for x in n.digest_at.split(":"))
        policy = Policy(new_exceptions=n.new_exceptions, max_listed=n.max_listed,
                        trouble=n.trouble, trouble_cycles=n.trouble_cycles, stalled=n.stalled,
                        stalled_after=parse_duration(n.stalled_after), digest=n.digest,
                        digest_at=time(hour, minute),
                        tz=ZoneInfo(self.settings.connector.timezone),
                        workspace_url=n.workspace_url)
        self._notices = Notifications(self.ledger, AppriseSender(urls, n), policy,
                                      clock=lambda: datetime.now(timezone.utc))
        return self._notices

    def notify_after_cycle(self, notices: Any, report: Any, error: str = "") -> list:
        from projections.digest import invoice_details

        from projections.notices import read_pending

        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            notices.restore_pending(read_pending(cur))

        def lookup(ref: str) -> tuple[str, str]:
            with self.projector.store.transaction() as cur:
                return invoice_details(cur, ref)

        return notices.after_cycle(report, error, lookup)

    def notify_tick(self, notices: Any) -> None:
        """The daemon's own checks between cycles: stalled, and the digest when it is due."""
        from projections.digest import compose_digest

        notices.check_stalled()
        key = notices.digest_key()
        if key is not None:
            self.projector.catch_up()
            with self.projector.store.transaction() as cur:
                subject, body = compose_digest(cur, notices.clock(), notices.policy.tz,
                                               notices.policy.workspace_url)
            notices.send_digest(key, subject, body)

def datetime_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
