"""Invoice CSV (stampli-exports.md §2): one row per invoice line, header fields repeated.

Two passes keep memory bounded on a 1 GB export whose invoices' rows need not be adjacent:

1. Stream the file (strict decoding, csv module), map columns through the template, and spill
   every row to a temporary spill file keyed by invoice identity (IFS company, vendor, document
   type, normalized number). Anything that makes the whole file unreadable (encoding, missing
   column, broken CSV) raises ExportFileError here, before anything is yielded.
2. Read the spill back grouped by identity, in first-seen order, and apply the rules to one
   invoice at a time.

A row without invoice number, vendor or document type cannot be attributed: it becomes a
RejectedRow. Every other problem is a RuleViolation on its invoice.
"""
from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

from adapters.settings import InvoiceFileSettings
from adapters.stampli import worker
from adapters.stampli.csvfile import BrokenRecord, CsvExport
from adapters.stampli.invoice_groups import company_of
from adapters.stampli.spill import RUN, Spill, two_pass
from adapters.stampli.templates import INVOICES, Template
from adapters.stampli.values import Formats
from ledger.model import ParsedInvoice, RejectedRow, invoice_identity
from ledger.new_invoice import ExportFileRef, PreparedInvoice

IDENTITY = ("invoice_number", "vendor_id", "document_type")


def read_csv_invoices(path: Path, settings: InvoiceFileSettings, *, default_company: str,
                      companies: dict[str, str], prepare_for: ExportFileRef | None = None
                      ) -> Iterator[ParsedInvoice | PreparedInvoice | RejectedRow]:
    """`prepare_for`: see worker.Pass2 (a large file's invoices may come as PreparedInvoice)."""
    path = Path(path)
    formats = Formats.of(settings, INVOICES.config_key, path.name)

    started: list[worker.Pass2] = []

    def pass_1(spill: Spill) -> worker.Pass2:
        """Validate the whole file, spill rows by identity; pass 2 may start meanwhile."""
        with CsvExport(path, settings, INVOICES) as export:
            template = export.template
            assert template is not None
            started.append(worker.Pass2(spill, tuple(template.index), template.labels,
                                        formats, default_company, companies, prepare_for,
                                        file_bytes=path.stat().st_size))
            _spill_rows(export, template, settings.delimiter, spill, default_company, companies)
        return started[0]

    def pass_2(job: worker.Pass2, groups: Iterator[list[Any]]
               ) -> Iterator[ParsedInvoice | PreparedInvoice | RejectedRow]:
        """One invoice at a time, first-seen order; in a worker process when the file is
        large and there is a core to spare (see worker.py)."""
        return job.run(groups)

    try:
        yield from two_pass(pass_1, pass_2)
    finally:
        for job in started:            # pass 1 failed, or the caller stopped early
            job.stop()


def _spill_rows(export: CsvExport, template: Template, delimiter: str, spill: Spill,
                default_company: str, companies: dict[str, str]) -> None:
    """Pass 1. Runs once per row of a file that may hold millions, so the per-row work is
    kept to C calls: the template's columns are taken by one itemgetter and stripped by map,
    and the identity key is computed once per run of rows with the same raw identity."""
    fields = tuple(template.index)
    positions = tuple(template.index.values())
    take = itemgetter(*positions)      # the required columns alone are > 1: always a tuple
    reach = max(positions) + 1
    # A header that starts with the template's columns in order (the default template): a row
    # of exactly that width needs no itemgetter.
    prefix = reach if positions == tuple(range(reach)) else -1
    width = template.width
    number_at, vendor_at, type_at = (fields.index(f) for f in IDENTITY)
    company_at = fields.index("company_id") if "company_id" in fields else None
    strip = str.strip
    last: tuple[str, ...] | None = None
    key = ""
    run: list[tuple[str, int, list[str], str]] = []   # adjacent rows of `key`, not spilled yet

    def end_run() -> None:             # one spill call per run of rows, not one per row
        if run:
            spill.add_run(key, run)
            run.clear()

    for line, cells in export.records():
        if cells.__class__ is BrokenRecord:
            end_run()
            spill.add(None, ("rejected", line, "row", f"the row {cells.message}"))  # type: ignore
            continue
        count = len(cells)
        if count == prefix:
            values = list(map(strip, cells))
        elif count >= reach:
            values = list(map(strip, take(cells)))
        else:                          # '' for the columns the short row lacks
            values = [cells[i].strip() if i < count else "" for i in positions]
        number, vendor, doc_type = values[number_at], values[vendor_at], values[type_at]
        if not (number and vendor and doc_type):
            missing = next(f for f, v in zip(IDENTITY, (number, vendor, doc_type)) if not v)
            end_run()
            spill.add(None, ("rejected", line, missing,
                             f"{template.labels[missing]} is empty, so the row cannot be "
                             f"attributed to an invoice; fix it in Stampli and export again"))
            continue
        shape = ""
        if count != width and (count < width or any(c.strip() for c in cells[width:])):
            shape = (f"the row has {count} columns but the header has "
                     f"{width}; a value probably holds an unquoted "
                     f"{delimiter!r} or a line break, so the columns shifted")
        company_id = values[company_at] if company_at is not None else ""
        identity = (company_id, vendor, doc_type, number)
        if identity != last or len(run) >= RUN:
            end_run()
            if identity != last:
                last = identity
                key = invoice_identity(company_of(company_id, default_company, companies),
                                       vendor, doc_type, number)
        run.append(("row", line, values, shape))
    end_run()
