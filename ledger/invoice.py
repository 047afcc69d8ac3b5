"""The Invoice aggregate: one stream per invoice identity (uuid5 of company, vendor, document
type and normalized invoice number), its past-tense events, and guard methods.

Every event carries the connector version that recorded it; `timestamp` is when it was
recorded. Topics are explicit so that modules can move without breaking stored events.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from ledger.aggregate import VersionStamped
from ledger.errors import (ActionNotAllowed, BadOperatorInput, InvoiceRuleError,
                           NotApproved)
from ledger.status import (ACTION_STATES, AMENDABLE, PARKED, RESTORED_ON_REOPEN,
                           SENT_TO_IFS, STAGE_OF_STATE, Stage, State, empty_row, transition)


REASON_MAX = 2000                      # characters: a paragraph, not a document
OPERATOR_MAX = 100


def who_and_why(operator: str, reason: str) -> tuple[str, str]:
    """The operator and reason as recorded (trimmed), or BadOperatorInput saying what to fix."""
    operator, reason = (operator or "").strip(), (reason or "").strip()
    if not operator:
        raise BadOperatorInput("no operator: say who acts (--by NAME)")
    if not reason:
        raise BadOperatorInput("no reason: say why (--reason TEXT); it is recorded with the"
                               " operator's name for the audit")
    for what, text, limit in (("operator", operator, OPERATOR_MAX),
                              ("reason", reason, REASON_MAX)):
        if len(text) > limit:
            raise BadOperatorInput(f"the {what} is {len(text)} characters long; at most"
                                   f" {limit} are recorded: shorten it")
        if any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in text):
            raise BadOperatorInput(f"the {what} holds control characters; use plain text")
    if "\n" in operator or "\t" in operator:
        raise BadOperatorInput("the operator is one name on one line")
    return operator, reason


class Invoice(VersionStamped, Aggregate):
    TOPIC = "ml_connector.Invoice"

    class Event(Aggregate.Event):
        connector_version: str

        def apply(self, aggregate: Invoice) -> None:
            data = vars(self)
            if type(self).__name__ == "Dismissed":      # what a reopen goes back to
                aggregate.before_dismissal = {k: aggregate.row[k] for k in RESTORED_ON_REOPEN}
                aggregate.before_dismissal["content_hash"] = aggregate.row["content_hash"]
            aggregate.row = transition(aggregate.row, type(self).__name__, data,
                                       self.originator_version, self.timestamp.isoformat())
            aggregate.on(type(self).__name__, data)

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.invoice.Created"

    class Discovered(Created):
        TOPIC = "ml_connector.invoice.Discovered"
        company: str
        vendor_id: str
        document_type: str
        invoice_number: str
        file_name: str
        file_sha256: str
        locations: list[int]

    class Parsed(Event):
        TOPIC = "ml_connector.invoice.Parsed"
        invoice: dict[str, Any]
        content_hash: str
        violations: list[dict[str, Any]]
        file_name: str
        file_sha256: str

    class Amended(Event):
        """New content for an invoice not yet posted; the old content stays in the ledger."""
        TOPIC = "ml_connector.invoice.Amended"
        invoice: dict[str, Any]
        content_hash: str
        previous_hash: str
        violations: list[dict[str, Any]]
        file_name: str
        file_sha256: str

    class SeenAgain(Event):
        """The same content in another export: a duplicate, nothing new to post."""
        TOPIC = "ml_connector.invoice.SeenAgain"
        file_name: str
        file_sha256: str
        locations: list[int]

    class ChangedAfterPosting(Event):
        """Different content for an invoice IFS already has: never re-posted, a person decides."""
        TOPIC = "ml_connector.invoice.ChangedAfterPosting"
        invoice: dict[str, Any]
        content_hash: str
        file_name: str
        file_sha256: str
        message: str

    class AwaitingApproval(Event):
        TOPIC = "ml_connector.invoice.AwaitingApproval"
        approval_status: str

    class Validated(Event):
        TOPIC = "ml_connector.invoice.Validated"
        checks: list[str]
        snapshot: str

    class VendorResolved(Event):
        TOPIC = "ml_connector.invoice.VendorResolved"
        supplier_id: str
        how: str
        exchanges: list[dict[str, Any]]

    class PostingIntended(Event):
        """Write-ahead intent: recorded before the first write to IFS. Optimistic concurrency
        on the aggregate version makes it a lock between processes."""
        TOPIC = "ml_connector.invoice.PostingIntended"
        attempt: int
        supplier_id: str
        content_hash: str
        worker: str

    class Posted(Event):
        TOPIC = "ml_connector.invoice.Posted"
        ifs_invoice_id: str
        voucher: dict[str, Any]
        etags: dict[str, str]
        exchanges: list[dict[str, Any]]
        found_existing: bool
        content_hash: str

    class Failed(Event):
        TOPIC = "ml_connector.invoice.Failed"
        class_version = 2
        stage: str
        kind: str
        code: str
        message: str
        attempt: int
        next_retry_at: str | None
        exchanges: list[dict[str, Any]]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 had no retry scheduling: every failure was parked.
            state.setdefault("next_retry_at", None)

    class ReplayRequested(Event):
        """Puts the invoice back in the state it had after event `from_version`. Appends;
        never rewrites."""
        TOPIC = "ml_connector.invoice.ReplayRequested"
        from_version: int
        restored_state: str
        reason: str

    # ---------------------------------------------------------- operator actions
    # Each names the person who acted (`operator`) and why (`reason`): an auditor reads them
    # in `history` and `audit export`, under the same hash chain as every other event.

    class Retried(Event):
        """`replay` by a person: back to the state after event `from_version`."""
        TOPIC = "ml_connector.invoice.Retried"
        from_version: int
        restored_state: str
        operator: str
        reason: str

    class ResolvedManually(Event):
        """A person entered this invoice in IFS by hand: it is never posted by the connector.
        `differences` is what the IFS document says otherwise than the invoice's content
        (`content_hash`); `forced` when a person resolved it in spite of them."""
        TOPIC = "ml_connector.invoice.ResolvedManually"
        ifs_invoice_id: str
        operator: str
        reason: str
        matches: bool
        forced: bool
        differences: list[dict[str, Any]]
        ifs_document: dict[str, Any]
        content_hash: str

    class Dismissed(Event):
        """This invoice must never go to IFS (a test, a duplicate sent by mistake)."""
        TOPIC = "ml_connector.invoice.Dismissed"
        operator: str
        reason: str

    class ReopenedAfterDismissal(Event):
        """Undoes a Dismissed: `restored` is the status the invoice goes back to. (Named apart
        from the export file's Reopened; people say "reopen".)"""
        TOPIC = "ml_connector.invoice.ReopenedAfterDismissal"
        operator: str
        reason: str
        restored: dict[str, Any]

    # ---- go-live cutover (issue 14)
    class Skipped(Event):
        """Never to be posted: approved (or dated) before `connector.ignore_approved_before`,
        so keyed in IFS by hand before go-live. New content from Stampli judges it again."""
        TOPIC = "ml_connector.invoice.Skipped"
        reason: str
        cutover: str
        date_field: str
        date: str

    # ------------------------------------------------------------------ state

    def __init__(self, company: str, vendor_id: str, document_type: str, invoice_number: str,
                 file_name: str, file_sha256: str, locations: list[int],
                 connector_version: str) -> None:
        self.row: dict[str, Any] = empty_row(str(self.id))
        self.content: dict[str, Any] = {}
        self.violations: list[dict[str, Any]] = []
        self.open_intent: dict[str, Any] | None = None
        self.posted: dict[str, Any] | None = None
        self.supplier_id = ""
        # The last event before the latest run of failures (and replays): where a replay
        # without an event number puts the invoice back, for the failed stage to retake it.
        self.version_before_failures = 1
        self.content_file: tuple[str, str] | None = None    # (name, sha256) it was read from
        # The content hash an AwaitingApproval was recorded for: that content was judged not
        # approved, and no replay of an earlier state changes the judgement.
        self.withheld_hash = ""
        # The status columns (and content hash) just before the latest Dismissed.
        self.before_dismissal: dict[str, Any] = {}

    def on(self, event: str, data: dict[str, Any]) -> None:
        if event not in _NOT_A_STEP:
            self.version_before_failures = data["originator_version"]
        if event in ("Parsed", "Amended"):
            self.content, self.violations = data["invoice"], data["violations"]
            self.content_file = (data["file_name"], data["file_sha256"])
        elif event == "AwaitingApproval":
            self.withheld_hash = self.content_hash
        elif event == "VendorResolved":
            self.supplier_id = data["supplier_id"]
        elif event == "PostingIntended":
            self.open_intent = data
        elif event == "Posted":
            self.open_intent, self.posted = None, data
        # A failed post leaves the intent open on purpose: whether IFS kept anything is only
        # known after looking, so every later attempt looks the document up first.

    @property
    def state(self) -> str:
        return self.row["state"]

    @property
    def content_hash(self) -> str:
        return self.row["content_hash"]

    # ------------------------------------------------------------------ commands

    @classmethod
    def discover(cls, id: UUID, *, company: str, vendor_id: str, document_type: str,
                 invoice_number: str, file_name: str, file_sha256: str,
                 locations: list[int]) -> Invoice:
        return cls._create(cls.Discovered, id=id, company=company, vendor_id=vendor_id,
                           document_type=document_type, invoice_number=invoice_number,
                           file_name=file_name, file_sha256=file_sha256,
                           locations=list(locations))

    @classmethod
    def discovered_events(cls, id: UUID, *, company: str, vendor_id: str, document_type: str,
                          invoice_number: str, file_name: str, file_sha256: str,
                          locations: list[int], invoice: dict[str, Any], content_hash: str,
                          violations: list[dict[str, Any]], approved: bool) -> list[Event]:
        """The events that `discover(...)` then `take_content(...)` record for an invoice the
        ledger does not hold yet (outcome "parsed"), built without the aggregate.

        Intake fast path: building the aggregate (eventsourcing's create/trigger/mutate
        machinery, and the status row folded per event) costs more than storing the events,
        and intake records most invoices of a new export this way. The events are the same
        classes with the same fields; tests/ledger/test_intake_fast_path.py holds the two
        paths equal for every branch of take_content a new invoice can take."""
        now = cls.Event.create_timestamp

        def event(event_class: type[Invoice.Event], version: int, **data: Any) -> Invoice.Event:
            return cls.stamped(event_class, originator_id=id, originator_version=version,
                               timestamp=now(), **data)

        events: list[Invoice.Event] = [
            event(cls.Discovered, 1, originator_topic=_TOPIC, company=company,
                  vendor_id=vendor_id, document_type=document_type,
                  invoice_number=invoice_number, file_name=file_name,
                  file_sha256=file_sha256, locations=list(locations)),
            event(cls.Parsed, 2, invoice=invoice, content_hash=content_hash,
                  violations=violations, file_name=file_name, file_sha256=file_sha256)]
        if violations:      # as take_content -> fail("parse", "data", ..., code="RULES")
            events.append(event(cls.Failed, 3, stage=Stage.PARSE, kind="data", code="RULES",
                                message=_violations_message(violations), attempt=1,
                                next_retry_at=None, exchanges=[]))
        elif not approved:
            events.append(event(cls.AwaitingApproval, 3,
                                approval_status=invoice["approval_status"]))
        return events

    def _record(self, event_class: type[Event], **data: Any) -> None:
        self.trigger_event(event_class, **data)

    def take_content(self, invoice: dict[str, Any], content_hash: str,
                     violations: list[dict[str, Any]], file_name: str, file_sha256: str,
                     locations: list[int], approved: bool) -> str:
        """Record what an export says about this invoice. Returns what happened:
        parsed, duplicate, amended or changed_after_posting."""
        source = dict(file_name=file_name, file_sha256=file_sha256)
        if not self.content_hash:
            self._record(self.Parsed, invoice=invoice, content_hash=content_hash,
                         violations=violations, **source)
            outcome = "parsed"
        elif content_hash == self.content_hash:
            self._record(self.SeenAgain, locations=list(locations), **source)
            return "duplicate"
        elif self.state == State.DISMISSED:
            # recorded, not judged: the invoice stays dismissed; a reopen takes it from here
            self._record(self.Amended, invoice=invoice, content_hash=content_hash,
                         previous_hash=self.content_hash, violations=violations, **source)
            return "amended"
        elif self.posted is not None or self.state in SENT_TO_IFS:
            self._record(self.ChangedAfterPosting, invoice=invoice, content_hash=content_hash,
                         message=_changed_after_posting_message(self, file_name), **source)
            return "changed_after_posting"
        elif self.state in AMENDABLE:
            self._record(self.Amended, invoice=invoice, content_hash=content_hash,
                         previous_hash=self.content_hash, violations=violations, **source)
            outcome = "amended"
        else:  # pragma: no cover - every state is covered above
            raise InvoiceRuleError(f"cannot take new content in state {self.state}")
        if violations:
            self.fail(Stage.PARSE, "data", _violations_message(violations), code="RULES")
        elif not approved:
            self._record(self.AwaitingApproval, approval_status=invoice["approval_status"])
        return outcome

    def validate(self, checks: list[str], snapshot: str) -> None:
        self._require_stage(Stage.VALIDATE)
        self._record(self.Validated, checks=checks, snapshot=snapshot)

    def resolve_vendor(self, supplier_id: str, how: str,
                       exchanges: list[dict[str, Any]] | None = None) -> None:
        self._require_stage(Stage.RESOLVE_VENDOR)
        self._record(self.VendorResolved, supplier_id=supplier_id, how=how,
                     exchanges=exchanges or [])

    def approval_problem(self, approved_statuses: Collection[str] | None) -> str:
        """Why the current content may not go to IFS ("" when it is approved): the ledger
        recorded it as awaiting approval, or its approval status is not one of
        `approved_statuses` (None: only the recorded judgement counts)."""
        status = self.content.get("approval_status", "")
        if self.withheld_hash == self.content_hash or (
                approved_statuses is not None and status not in approved_statuses):
            return (f"invoice {self.ref} is not approved in Stampli (approval status"
                    f" {status!r}); it moves on by itself when Stampli exports it approved")
        return ""

    def hold_for_approval(self) -> None:
        """Back to waiting for approval: content that is not approved reached a stage (an
        earlier connector's replay, a changed setting)."""
        if self.posted is not None or self.state == State.AWAITING_APPROVAL:
            raise InvoiceRuleError(f"invoice {self.ref} is {self.state}")
        self._record(self.AwaitingApproval,
                     approval_status=self.content.get("approval_status", ""))

    def intend_posting(self, worker: str, *, approved_statuses: Collection[str],
                       looked_up: bool = False) -> None:
        """The write-ahead intent to post the current content, which must be approved."""
        self._require_stage(Stage.POST)
        if self.open_intent is not None and not looked_up:
            raise InvoiceRuleError("a posting intent is already open; look it up in IFS first")
        problem = self.approval_problem(approved_statuses)
        if problem:
            raise NotApproved(problem)
        self._record(self.PostingIntended, attempt=self.row["attempts"] + 1,
                     supplier_id=self.supplier_id, content_hash=self.content_hash,
                     worker=worker)

    def post(self, ifs_invoice_id: str, voucher: dict[str, Any], etags: dict[str, str],
             exchanges: list[dict[str, Any]], found_existing: bool = False) -> None:
        if self.posted is not None:
            raise InvoiceRuleError("already posted")
        self._record(self.Posted, ifs_invoice_id=str(ifs_invoice_id), voucher=voucher,
                     etags=etags, exchanges=exchanges, found_existing=found_existing,
                     content_hash=self.content_hash)

    def fail(self, stage: str, kind: str, message: str, *, code: str = "",
             next_retry_at: str | None = None, exchanges: list[dict[str, Any]] | None = None,
             count_attempt: bool = True) -> None:
        attempt = self.row["attempts"] + (1 if count_attempt else 0)
        self._record(self.Failed, stage=stage, kind=kind, code=code, message=message,
                     attempt=attempt, next_retry_at=next_retry_at, exchanges=exchanges or [])

    def request_replay(self, from_version: int, restored_state: str, reason: str) -> None:
        self._record(self.ReplayRequested, from_version=from_version,
                     restored_state=restored_state, reason=reason)

    def retry(self, from_version: int, restored_state: str, operator: str, reason: str) -> None:
        operator, reason = who_and_why(operator, reason)
        self.require_action("retry")
        self._record(self.Retried, from_version=from_version, restored_state=restored_state,
                     operator=operator, reason=reason)

    def resolve_manually(self, ifs_invoice_id: str, operator: str, reason: str, *,
                         ifs_document: dict[str, Any], differences: list[dict[str, Any]],
                         force: bool) -> None:
        operator, reason = who_and_why(operator, reason)
        self.require_action("resolve")
        if differences and not force:
            raise InvoiceRuleError(f"IFS InvoiceId {ifs_invoice_id} differs from invoice"
                                   f" {self.ref}; resolving it anyway needs force")
        self._record(self.ResolvedManually, ifs_invoice_id=str(ifs_invoice_id),
                     operator=operator, reason=reason, matches=not differences,
                     forced=bool(differences), differences=differences,
                     ifs_document=ifs_document, content_hash=self.content_hash)

    def dismiss(self, operator: str, reason: str) -> None:
        operator, reason = who_and_why(operator, reason)
        self.require_action("dismiss")
        if self.open_intent is not None:
            raise InvoiceRuleError(self.open_intent_problem())
        self._record(self.Dismissed, operator=operator, reason=reason)

    def reopen(self, operator: str, reason: str) -> None:
        operator, reason = who_and_why(operator, reason)
        self.require_action("reopen")
        before = self.before_dismissal
        restored = {k: before.get(k, "") for k in RESTORED_ON_REOPEN}
        if before.get("content_hash") != self.content_hash:
            # Stampli sent new content while it was dismissed: the earlier state judged the
            # earlier content, so the new one starts from parsed (validate judges it)
            restored = dict(state=State.PARSED, stage="", failure_kind="", failure_message="",
                            next_retry_at=None)
        self._record(self.ReopenedAfterDismissal, operator=operator, reason=reason,
                     restored=restored)

    def open_intent_problem(self) -> str:
        return (f"invoice {self.ref} has a posting attempt whose outcome is unknown: IFS may"
                f" hold it; look up ExternalRef {self.id} in IFS (if it is there, resolve it"
                " with its InvoiceId; if not, retry it)")

    def require_action(self, action: str) -> None:
        allowed = ACTION_STATES[action]
        if self.state not in allowed:
            raise ActionNotAllowed(f"invoice {self.ref} is {self.state}; {action} is allowed"
                                   f" only when it is {', '.join(allowed)}", action=action,
                                   state=self.state, allowed_states=allowed)

    # ---- go-live cutover (issue 14)
    def cutover_date(self, date_field: str) -> str:
        """The ISO day the cutover compares ("" when the export gave none)."""
        raw = self.content.get("approved_at" if date_field == "approved" else "invoice_date")
        day = str(raw or "")[:10]
        return day if len(day) == 10 and day[4] == "-" and day[7] == "-" else ""

    def skip(self, reason: str, *, cutover: str, date_field: str, date: str) -> None:
        if self.posted is not None or self.state in (State.POSTING, State.POSTED, State.SKIPPED):
            raise InvoiceRuleError(f"invoice {self.ref} is {self.state}; it cannot be skipped")
        self._record(self.Skipped, reason=reason, cutover=cutover, date_field=date_field,
                     date=date)

    def waiting_for(self, stage: str) -> bool:
        acting = self.row["stage"] if self.state in PARKED else None
        return (acting or STAGE_OF_STATE.get(self.state)) == stage

    def _require_stage(self, stage: str) -> None:
        if not self.waiting_for(stage):
            raise InvoiceRuleError(f"invoice {self.ref} is {self.state}; it is not waiting for"
                                   f" {stage.replace('_', ' ')}")

    @property
    def ref(self) -> str:
        return f"{self.row['vendor_id']}/{self.row['invoice_number']}"


_TOPIC = get_topic(Invoice)
# Events after which a replay without --from does not go back to (see version_before_failures).
_NOT_A_STEP = frozenset({"Failed", "ReplayRequested", "Retried", "Dismissed",
                         "ReopenedAfterDismissal"})


def _violations_message(violations: list[dict[str, Any]]) -> str:
    parts = []
    for v in violations[:5]:
        where = f"line {v['line']}, " if v.get("line") else ""
        parts.append(f"{where}{v['field']}: {v['message']}")
    more = f" (+{len(violations) - 5} more)" if len(violations) > 5 else ""
    return "; ".join(parts) + more + "; correct the invoice in Stampli and re-export it"


def _changed_after_posting_message(invoice: Invoice, file_name: str) -> str:
    if invoice.state == State.RESOLVED:
        return (f"{file_name} changes invoice {invoice.ref}, which a person entered in IFS by"
                f" hand (InvoiceId {invoice.row.get('ifs_invoice_id') or '?'}); it will not be"
                " posted: correct that document in IFS if needed, then `ml-connector resolve"
                f" {invoice.ref} --ifs-invoice-id N --reason ...` records it again")
    if invoice.posted is None:     # state "posting": an attempt was under way, its fate unknown
        return (f"{file_name} changes invoice {invoice.ref} while it was being posted to IFS;"
                " IFS may already hold the earlier content, so neither version is posted"
                f" automatically: look up ExternalRef {invoice.id} in IFS and put it right"
                f" there by hand (`ml-connector history {invoice.ref}` shows both versions)")
    ifs_id = invoice.row.get("ifs_invoice_id") or "?"
    return (f"{file_name} changes invoice {invoice.ref}, which is already posted in IFS"
            f" (InvoiceId {ifs_id}); it will not be posted again: correct it in IFS by hand"
            " (credit note or manual adjustment)")
