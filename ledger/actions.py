"""Operator actions on one invoice: retry, resolve by hand, dismiss, reopen.

What the CLI and the web workspace both call. Each action names who acted and why, is
recorded as one event on the invoice (nothing else changes), and is refused with an
ActionRefused, nothing recorded, when the invoice's state does not allow it (the message and
`allowed_states` name the states that do), when the operator or reason cannot be recorded,
or, for resolve, when IFS does not hold the document or it differs and `force` was not given.
"""
from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ledger.app import Ledger
from ledger.errors import (ActionNotAllowed, BadOperatorInput, ConcurrentChange,
                           InvoiceRuleError, LedgerError)
from ledger.invoice import Invoice, who_and_why
from ledger.model import normalize_invoice_number
from ledger.ports import Erp, ErpDocument, ErpFailure
from ledger.status import ACTION_STATES, allowed_actions

IFS_INVOICE_ID_MAX = 2**31 - 1         # IFS InvoiceId is a NUMBER key; larger is a typo


class ActionRefused(LedgerError):
    """An operator action that was not recorded, and why. `allowed_states` names the states
    that allow the action when the invoice's state was the obstacle (else empty);
    `bad_input` is True when the operator, reason or IFS InvoiceId was the obstacle."""

    def __init__(self, message: str, *, action: str = "", state: str = "",
                 allowed_states: tuple[str, ...] = (), bad_input: bool = False) -> None:
        super().__init__(message)
        self.action, self.state = action, state
        self.allowed_states, self.bad_input = allowed_states, bad_input


def parse_ifs_invoice_id(value: Any) -> int:
    """An IFS InvoiceId as typed by a person: a positive whole number."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= IFS_INVOICE_ID_MAX:
        raise ActionRefused(f"IFS InvoiceId {text[:40]!r} is not a number; give the InvoiceId"
                            " IFS shows for the supplier invoice (e.g. 4711)", action="resolve",
                            bad_input=True)
    return int(text)


def checked_who_and_why(operator: str, reason: str, action: str = "") -> tuple[str, str]:
    """The operator and reason as they will be recorded, or ActionRefused(bad_input=True)."""
    return _refusing(action, lambda: who_and_why(operator, reason))


def differences(invoice: Invoice, doc: ErpDocument) -> list[dict[str, str]]:
    """Where the IFS document says otherwise than the invoice's current content: supplier,
    invoice number, type, currency and the header amounts (compared as numbers)."""
    content = invoice.content
    expected_type = "CREDIT" if content.get("document_type") == "CreditNote" else "INVOICE"
    checks: list[tuple[str, str, str, bool]] = [
        ("supplier", invoice.supplier_id or content.get("vendor_id", ""), doc.supplier_id,
         False),
        ("invoice number", content.get("invoice_number", ""), doc.invoice_number, False),
        ("invoice type", expected_type, doc.invoice_type or expected_type, False),
        ("currency", content.get("currency", ""), doc.currency, False),
        ("net amount", str(content.get("net") or ""), doc.net, True),
        ("tax amount", str(content.get("tax") or "0"), doc.tax, True),
        ("total", str(content.get("total") or ""), doc.gross, True),
    ]
    out = []
    for field, ours, theirs, money in checks:
        same = _same_amount(ours, theirs) if money else (
            normalize_invoice_number(ours) == normalize_invoice_number(theirs)
            if field == "invoice number" else ours.strip() == theirs.strip())
        if not same:
            out.append({"field": field, "invoice": ours, "ifs": theirs})
    return out


def _same_amount(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return a.strip() == b.strip()


def describe_differences(found: list[dict[str, str]]) -> str:
    return "; ".join(f"{d['field']}: the invoice says {d['invoice'] or '(nothing)'}, IFS says"
                     f" {d['ifs'] or '(nothing)'}" for d in found)


class OperatorActions:
    """The four actions, on ledger ids. `approved_statuses`: the configured ones (a retry
    never skips the approval of content Stampli has not approved)."""

    def __init__(self, ledger: Ledger, *,
                 approved_statuses: Collection[str] | None = None) -> None:
        self.ledger = ledger
        self.approved_statuses = approved_statuses

    def retry(self, id: UUID, operator: str, reason: str,
              from_version: int | None = None) -> dict[str, Any]:
        self.ledger.invoice(id)                 # an unknown invoice is not a refusal
        try:
            invoice, went_back_to = _refusing("retry", lambda: self.ledger.request_replay(
                id, from_version, reason, operator=operator,
                approved_statuses=self.approved_statuses))
        except (ActionRefused, ConcurrentChange):
            raise
        except LedgerError as exc:              # the replay rules (ledger/replay.py)
            raise ActionRefused(str(exc), action="retry") from None
        return {**_outcome(invoice), "from_version": went_back_to,
                "restored_state": invoice.state}

    async def resolve_manually(self, id: UUID, ifs_invoice_id: Any, operator: str,
                               reason: str, *, erp: Erp, force: bool = False) -> dict[str, Any]:
        """Reads the document from IFS, compares it with the invoice's content and records
        ResolvedManually. A document IFS does not hold is refused; one that differs is
        refused unless `force` (then recorded as forced, with the differences)."""
        number = parse_ifs_invoice_id(ifs_invoice_id)
        invoice = self.ledger.invoice(id)
        checked_who_and_why(operator, reason, "resolve")
        _refusing("resolve", lambda: invoice.require_action("resolve"))
        company = invoice.row["company"]
        try:
            doc = await erp.read_invoice(company, number)
        except ErpFailure as exc:
            raise ActionRefused(f"could not read InvoiceId {number} from IFS: {exc}; nothing"
                                " recorded, try again when IFS answers",
                                action="resolve") from None
        if doc is None:
            raise ActionRefused(f"IFS company {company} holds no supplier invoice with"
                                f" InvoiceId {number}; check the number in IFS (nothing"
                                " recorded)", action="resolve")
        found = differences(invoice, doc)
        if found and not force:
            raise ActionRefused(f"IFS InvoiceId {number} does not match invoice {invoice.ref}:"
                                f" {describe_differences(found)}; correct it in IFS, or"
                                " resolve with --force to record it as it is (the differences"
                                " are recorded)", action="resolve")
        _refusing("resolve", lambda: invoice.resolve_manually(
            str(number), operator, reason, ifs_document=_document_data(doc),
            differences=found, force=force))
        self.ledger.save_all([invoice])
        return {**_outcome(invoice), "ifs_invoice_id": str(number), "matches": not found,
                "differences": found}

    def dismiss(self, id: UUID, operator: str, reason: str) -> dict[str, Any]:
        invoice = self.ledger.invoice(id)
        _refusing("dismiss", lambda: invoice.dismiss(operator, reason))
        self.ledger.save_all([invoice])
        return _outcome(invoice)

    def reopen(self, id: UUID, operator: str, reason: str) -> dict[str, Any]:
        invoice = self.ledger.invoice(id)
        _refusing("reopen", lambda: invoice.reopen(operator, reason))
        self.ledger.save_all([invoice])
        return _outcome(invoice)


def _refusing(action: str, fn: Any) -> Any:
    """fn(), with the aggregate's refusals as ActionRefused."""
    try:
        return fn()
    except ActionNotAllowed as exc:
        raise ActionRefused(str(exc), action=action, state=exc.state,
                            allowed_states=exc.allowed_states) from None
    except BadOperatorInput as exc:
        raise ActionRefused(str(exc), action=action, bad_input=True) from None
    except InvoiceRuleError as exc:
        raise ActionRefused(str(exc), action=action) from None


def _outcome(invoice: Invoice) -> dict[str, Any]:
    return {"id": str(invoice.id), "ref": invoice.ref, "state": invoice.state,
            "version": invoice.version, "actions": allowed_actions(invoice.state)}


def _document_data(doc: ErpDocument) -> dict[str, Any]:
    return {f: getattr(doc, f) for f in doc.__struct_fields__}


__all__ = ["ACTION_STATES", "ActionRefused", "checked_who_and_why", "OperatorActions", "allowed_actions",
           "differences", "parse_ifs_invoice_id"]
