"""The composition root: builds the ledger, projections, secrets and the edges from the
settings (with overrides for tests), and offers the use cases the CLI calls."""
from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from adapters.cycle_record import moved_sentence
from adapters.secrets import SecretsError, SecretStore
from adapters.settings import (ConfigError, InvoiceFileSettings, Settings, ledger_url,
                               parse_duration, resolve_path)
from ledger.actions import OperatorActions, checked_who_and_why, parse_ifs_invoice_id
from ledger.app import Ledger
from ledger.errors import ConnectorError, LedgerError
from ledger.persistence import connection_url
from ledger.users import LoginPolicy, Users
from ledger.pipeline import CycleReport, Pipeline, PipelineSettings
from ledger.poller import Poller, PollSettings
from evidence import Evidence
from month_end import MonthEndClose
from ledger.ports import Erp, ExportSource, SourceError
from projections.queue import ProjectionQueue
from projections.runner import Projector, default_projections
from projections.status import count_states, read_status


class Runtime(MonthEndClose):
    def __init__(self, settings: Settings, *, ledger: Ledger | None = None,
                 erp: Erp | None = None, source: ExportSource | None = None) -> None:
        self.settings = settings
        self._ledger = ledger
        self._projector: Projector | None = None
        self._erp, self._source = erp, source       # overrides for tests
        self.secrets = SecretStore(settings.data_dir)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.cycle_observers: list[Any] = []     # called with (summary, pipeline) per cycle
        # The audit key is bound to the ledger as configured (tenant schema, no password).
        self.evidence_url = ledger.url if ledger else connection_url(
            ledger_url(settings), schema=settings.connector.schema)
        self.evidence = Evidence(self.secrets, self.evidence_url)
        self._attached = False

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.ledger_connection_url())
        if not self._attached:                  # the audit key, before anything is written
            self._attached = True
            self.evidence.attach(self._ledger)
        return self._ledger

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            self._projector = Projector(self.ledger)
            self.evidence.guard(self.ledger, self._projector)
        return self._projector

    def ledger_connection_url(self) -> str:
        """PostgreSQL: the password from the secret ledger.password, the tenant's schema."""
        url = ledger_url(self.settings)
        if not url.startswith(("postgresql://", "postgres://")):
            return url
        try:
            password = self.secrets.get("ledger.password") or ""
        except SecretsError as exc:
            # Reads must work without the store (audit key unreadable, wrong master key): a
            # database that needs the password then says so when it refuses the login.
            logging.getLogger("ml_connector.secrets").debug("ledger.password unavailable: %s",
                                                           exc)
            password = ""
        return connection_url(url, password, self.settings.connector.schema)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
        if self._projector is not None:
            self.evidence.close(self.ledger, self._projector)
            self._projector.store.close()
        if self._ledger is not None:
            self._ledger.close()

    # ------------------------------------------------------------------ queries

    def status_rows(self, state: str | None = None) -> list[dict[str, Any]]:
        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            return read_status(cur, state)

    def state_counts(self) -> dict[str, int]:
        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            return count_states(cur)

    def rebuild_projections(self, from_position: int | None, progress: Any = None, *,
                            include_audit_chain: bool = False, force: bool = False,
                            reason: str = "") -> tuple[int, str]:
        """(events applied, what verify said if the chain was rebuilt while it failed)."""
        projector, failure = self.projector, ""
        if include_audit_chain:
            failure = self.evidence.rebuild_chain_allowed(self.ledger, projector, force=force,
                                                          reason=reason)
            projector = Projector(self.ledger, projector.store, default_projections())
            self._projector = projector             # the chain is back among the projections
        count = projector.rebuild(from_position, progress=progress,
                                  include_evidence=include_audit_chain)
        return count, failure

    def resolve(self, ref: str) -> UUID:
        return self.ledger.resolve_ref(ref, self.settings.connector.company)

    # ------------------------------------------------------------------ replay

    def approved_statuses(self) -> tuple[str, ...]:
        st = self.settings.stampli
        invoices = st.invoices if st is not None else InvoiceFileSettings()
        return tuple(invoices.approved_statuses)

    def actions(self) -> OperatorActions:
        return OperatorActions(self.ledger, approved_statuses=self.approved_statuses())

    def replay_one(self, ref: str, from_version: int | None, reason: str,
                   operator: str) -> dict[str, Any]:
        return self.actions().retry(self.resolve(ref), operator, reason, from_version)

    def replay_failed(self, kind: str | None, reason: str, operator: str) -> dict[str, Any]:
        """Retry every parked invoice (of `kind`). `data` failures are left unless asked for
        by kind: they fail again at once unless Stampli sent new content (which moves them on
        by itself). Returns {"replayed": [...], "left": {kind: count}, "refused": [...]}."""
        checked_who_and_why(operator, reason, "retry")
        done: list[dict[str, Any]] = []
        left: dict[str, int] = {}
        refused: list[dict[str, str]] = []
        for row in self.status_rows("failed"):
            if kind and row["failure_kind"] != kind:
                continue
            if kind is None and row["failure_kind"] == "data":
                left["data"] = left.get("data", 0) + 1
                continue
            try:
                done.append(self.actions().retry(UUID(row["id"]), operator, reason))
            except LedgerError as exc:     # e.g. posted and changed since: stays listed
                refused.append({"ref": f"{row['vendor_id']}/{row['invoice_number']}",
                                "reason": str(exc)})
        return {"replayed": done, "left": left, "refused": refused}

    # ------------------------------------------------------------------ users

    def users(self, policy: LoginPolicy | None = None) -> Users:
        """User administration and login on this ledger (the web server passes its policy)."""
        return Users(self.ledger, policy)

    # ------------------------------------------------------------------ operator actions

    def retry(self, ref: str, operator: str, reason: str,
              from_version: int | None = None) -> dict[str, Any]:
        return self.replay_one(ref, from_version, reason, operator)

    async def resolve_manually_async(self, ref: str, ifs_invoice_id: Any, operator: str,
                                     reason: str, force: bool = False) -> dict[str, Any]:
        """For a caller already in an event loop (the web server); closes nothing."""
        return await self.actions().resolve_manually(self.resolve(ref), ifs_invoice_id,
                                                     operator, reason, erp=self.erp(),
                                                     force=force)

    def resolve_manually(self, ref: str, ifs_invoice_id: Any, operator: str, reason: str,
                         force: bool = False) -> dict[str, Any]:
        parse_ifs_invoice_id(ifs_invoice_id)          # bad input: no IFS session opened
        checked_who_and_why(operator, reason, "resolve")

        async def go() -> dict[str, Any]:
            try:
                return await self.resolve_manually_async(ref, ifs_invoice_id, operator,
                                                         reason, force)
            finally:
                await self.erp().close()
        return asyncio.run(go())

    def dismiss(self, ref: str, operator: str, reason: str) -> dict[str, Any]:
        return self.actions().dismiss(self.resolve(ref), operator, reason)

    def reopen(self, ref: str, operator: str, reason: str) -> dict[str, Any]:
        return self.actions().reopen(self.resolve(ref), operator, reason)

    # ------------------------------------------------------------------ the pipeline

    def source(self) -> ExportSource:
        if self._source is None:
            from adapters.stampli.sftp import SftpSource

            if self.settings.stampli is None:
                raise SourceError("no [stampli] section in the config", transient=False)
            base = resolve_path(self.settings, ".")
            self._source = SftpSource.from_settings(self.settings.stampli,
                                                    self.secrets.get_all(), base)
        return self._source

    def erp(self) -> Erp:
        if self._erp is None:
            from adapters.ifs.client import IfsErp

            if self.settings.ifs is None:
                raise ConfigError("no [ifs] section in the config")
            secret = self.secrets.get("ifs.client_secret") or ""
            self._erp = IfsErp(self.settings.ifs, secret,
                               default_company=self.settings.connector.company)
            for service in self._erp.posting_services():    # what earlier runs learned
                known = self.ledger.posting_path(service)
                if known is not None and known.path:
                    self._erp.remember_path(service, known.path,
                                            f"{known.reason} (recorded {known.at})")
        return self._erp

    def pipeline(self, progress: Any = None) -> Pipeline:
        from adapters.stampli.configured import ConfiguredReaders

        c, st = self.settings.connector, self.settings.stampli
        erp = self.erp()                # the edges' secrets first: a broken store is one error
        source = self.source() if st is not None else None
        queue = ProjectionQueue(self.projector)
        poller = None
        if st is not None:
            poller = Poller(self.ledger, source,
                            ConfiguredReaders(st, c.company), queue,
                            PollSettings(source_name=f"sftp://{st.username}@{st.host}:{st.port}"
                                         f"{st.outbound_dir}",
                                         min_file_age=parse_duration(st.min_file_age),
                                         stable_wait=parse_duration(st.stable_wait),
                                         download_dir=self.settings.data_dir / "files",
                                         archive_dir=st.archive_dir,
                                         approved_statuses=st.invoices.approved_statuses))
        settings = PipelineSettings(worker=self.worker, max_attempts=c.max_attempts,
                                    retry_base=parse_duration(c.retry_base),
                                    retry_max=parse_duration(c.retry_max),
                                    intent_lease=parse_duration(c.intent_lease),
                                    post_batch=c.post_batch,
                                    approved_statuses=self.approved_statuses(),
                                    ignore_before=c.ignore_approved_before,
                                    cutover_date=c.cutover_date)
        if self.settings.ifs is not None:
            settings.reference_retry = parse_duration(self.settings.ifs.reference_refresh)
        return Pipeline(self.ledger, erp, queue, settings, poller=poller, progress=progress)

    async def _cycle(self, pipeline: Pipeline) -> CycleReport:
        """One cycle, IFS calls bounded by `connector.cycle_timeout` (and the breaker)."""
        start_cycle = getattr(pipeline.erp, "start_cycle", None)
        if start_cycle is not None:
            start_cycle(parse_duration(self.settings.connector.cycle_timeout))
        started = time.monotonic()
        report = await pipeline.cycle()
        logging.getLogger("ml_connector.cycle").info(
            "cycle done: %s, %d failed", moved_sentence(report.moved), len(report.failed),
            extra={"event": "cycle_done", "counts": report.moved, "failed": len(report.failed),
                   "errors": report.errors,
                   "duration_ms": round((time.monotonic() - started) * 1000)})
        return report

    async def sync(self, pipeline: Pipeline | None = None, progress: Any = None) -> CycleReport:
        pipeline = pipeline or self.pipeline(progress)
        try:
            report = await self.cycle(pipeline)
        finally:
            await pipeline.erp.close()
        notices = self.notifications()
        if notices is not None:
            await asyncio.to_thread(self.notify_after_cycle, notices, report)
        return report

    async def cycle(self, pipeline: Pipeline) -> CycleReport:
        """One cycle, kept as the last cycle (data_dir/last_cycle.json) for the workspace's
        overview and /healthz, and shown to whoever observes cycles (the web's metrics)."""
        import time
        from datetime import datetime, timezone

        started, clock = datetime.now(timezone.utc).isoformat(), time.monotonic()
        try:
            report = await self._cycle(pipeline)
        except Exception as exc:
            report = CycleReport(errors=[str(exc)])
            self._keep_cycle(report, started, time.monotonic() - clock, pipeline)
            raise
        self._keep_cycle(report, started, time.monotonic() - clock, pipeline)
        return report

    def _keep_cycle(self, report: CycleReport, started: str, duration: float,
                    pipeline: Pipeline) -> None:
        from datetime import datetime, timezone

        from adapters.cycle_record import cycle_summary, write_cycle

        summary = cycle_summary(report, started, datetime.now(timezone.utc).isoformat(),
                                duration)
        try:
            write_cycle(self.settings.data_dir, summary)
        except OSError:
            pass    # the overview then shows an older cycle; the cycle itself is recorded
        for observe in self.cycle_observers:
            observe(summary, pipeline)

    def sync_blocking(self, progress: Any = None) -> CycleReport:
        return asyncio.run(self.sync(progress=progress))

    async def run_daemon(self, on_cycle, on_error, serve: bool = False) -> None:
        """A cycle on every tick of `schedule`, and an early one between ticks when a file
        was skipped only as too young (adapters.schedule.early_cycle_at); SIGTERM/SIGINT let
        the request in flight finish and be recorded, then return. `serve`: the web
        workspace in the same loop."""
        import signal
        from datetime import datetime, timezone

        from adapters.cycle_record import note_next_run
        from adapters.schedule import Schedule, early_cycle_at
        from ledger.poller import earliest_ready, young_names

        run_log = logging.getLogger("ml_connector.run")
        schedule = Schedule(self.settings.connector.schedule, self.settings.connector.timezone)
        pipeline = self.pipeline()
        notices = self.notifications()
        stop = asyncio.Event()

        def request_stop() -> None:
            stop.set()
            pipeline.stopping.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        server = await self.start_web(schedule) if serve else None
        try:
            next_cycle = datetime.now(timezone.utc)
            early: datetime | None = None      # for a file skipped only as too young
            waiting = ""
            while not stop.is_set():
                now = datetime.now(timezone.utc)
                if now >= next_cycle or (early is not None and now >= early):
                    scheduled = now >= next_cycle
                    if not scheduled:
                        run_log.info("early cycle for %s: skipped by the last cycle as younger"
                                     " than min_file_age, old enough now (next scheduled cycle"
                                     " at %s)", waiting, next_cycle.isoformat(timespec="seconds"),
                                     extra={"event": "early_cycle", "file": waiting})
                    report, error = None, ""
                    try:
                        report = await self.cycle(pipeline)
                        on_cycle(report)
                    except (ConnectorError, OSError) as exc:
                        on_error(exc)
                        error = str(exc)
                    except Exception as exc:  # noqa: BLE001 - the daemon outlives a bad answer
                        on_error(RuntimeError(f"unexpected {type(exc).__name__}: {exc}"))
                        run_log.debug("cycle failed", exc_info=True)
                        error = f"unexpected {type(exc).__name__}: {exc}"
                    if notices is not None:
                        await asyncio.to_thread(self.notify_after_cycle, notices, report, error)
                    now = datetime.now(timezone.utc)
                    if scheduled:
                        next_cycle = schedule.next_after(now)
                    skipped = report.poll.get("skipped", []) if report else []
                    early = early_cycle_at(earliest_ready(skipped), now, next_cycle)
                    waiting = young_names(skipped)
                    with contextlib.suppress(OSError):     # the overview's "next run"
                        note_next_run(self.settings.data_dir, min(next_cycle, early or next_cycle))
                    if early is not None:
                        run_log.info("%s skipped as younger than min_file_age: an early cycle"
                                     " at %s", waiting, early.isoformat(timespec="seconds"),
                                     extra={"event": "early_cycle_planned", "file": waiting})
                wake = min(next_cycle, early) if early is not None else next_cycle
                if notices is not None:     # a stall and the digest are the daemon's to see
                    await asyncio.to_thread(self.notify_tick, notices)
                    wake = min(wake, notices.next_check())
                now = datetime.now(timezone.utc)
                wait = (wake - now).total_seconds()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, wait))
                except asyncio.TimeoutError:
                    pass
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if server is not None:
                await server.cleanup()
            await pipeline.erp.close()

    # ------------------------------------------------------------------ the web workspace

    async def start_web(self, schedule: Any = None) -> Any:
        """Start the workspace's HTTP server on [web] host:port; returns its runner."""
        from web.app import start_server

        return await start_server(self, schedule)

    async def serve(self, on_ready=None) -> None:
        """`ml-connector serve`: the workspace alone, until SIGTERM/SIGINT."""
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = await self.start_web()
        try:
            if on_ready:
                on_ready()
            await stop.wait()
        finally:
            await runner.cleanup()
            if self._erp is not None:          # opened by a Resolve (it reads IFS)
                await self._erp.close()

    # ------------------------------------------------------------------ check

    def check(self) -> list[dict[str, Any]]:
        """"Ping your real systems": SFTP and IFS, each item with what fits and what not."""
        items: list[dict[str, Any]] = []
        items.extend(self._check_sftp())
        items.extend(asyncio.run(self._check_ifs()))
        return items

    def _check_sftp(self) -> list[dict[str, Any]]:
        st = self.settings.stampli
        if st is None:
            return [{"item": "Stampli SFTP", "ok": False, "detail": "no [stampli] section"}]
        where = f"{st.username}@{st.host}:{st.port}"
        try:
            files = self.source().list_files(self._all_patterns())
        except SourceError as exc:
            return [{"item": f"SFTP login {where}", "ok": False, "detail": str(exc)}]
        return [{"item": f"SFTP login {where}", "ok": True,
                 "detail": f"host key pinned in {st.known_hosts}, {st.auth} login accepted"},
                {"item": f"SFTP listing {st.outbound_dir}", "ok": True,
                 "detail": f"{len(files)} export file(s) match the configured patterns"}]

    def _all_patterns(self) -> list[str]:
        st = self.settings.stampli
        assert st is not None
        return [*st.invoices.patterns, *st.vendors.patterns, *st.purchase_orders.patterns]

    async def _check_ifs(self) -> list[dict[str, Any]]:
        if self.settings.ifs is None:
            return [{"item": "IFS", "ok": False, "detail": "no [ifs] section"}]
        erp = self.erp()
        try:
            return [{"item": item, "ok": ok, "detail": detail}
                    for item, ok, detail in await erp.check()]
        finally:
            await erp.close()
