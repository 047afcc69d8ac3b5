"""The pieces of the chain that need no database: encoding, ranges, digest documents."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from projections.audit import (AuditChainProjection, decode_ranges, encode_ranges, fingerprint,
                               header, next_link)
from projections.audit_verify import check_digest, verify
from projections.audit_digest import current_digest
from ledger.app import Ledger

OID = uuid.UUID("3652cd47-64ea-5590-a7c7-dc3112c31820")


def test_header_is_fixed_width_fields_and_a_length_prefixed_topic():
    got = header(17, OID, 2, "ml_connector.invoice.Parsed")
    assert got == (bytes.fromhex("0000000000000011") + OID.bytes
                   + bytes.fromhex("0000000000000002") + bytes.fromhex("0000001b")
                   + b"ml_connector.invoice.Parsed")
    assert header(17, str(OID), 2, "ml_connector.invoice.Parsed") == got
    assert header(17, OID.hex, 2, "ml_connector.invoice.Parsed") == got   # SQLite's form


def test_link_is_sha256_of_previous_header_and_state():
    head = header(1, OID, 1, "t")
    assert next_link(bytes(32), head, b"{}") == hashlib.sha256(bytes(32) + head + b"{}").digest()


def test_fingerprint_ignores_the_position_but_not_the_state():
    a = fingerprint(header(1, OID, 1, "t"), b"{}")
    assert len(a) == 16 and a == fingerprint(header(9, OID, 1, "t"), b"{}")
    assert a[:8] == fingerprint(header(1, OID, 1, "t"), b"{ }")[:8]
    assert a[8:] != fingerprint(header(1, OID, 1, "t"), b"{ }")[8:]


@pytest.mark.parametrize("positions,text", [
    ([], ""), ([7], "7"), ([1, 2, 3], "1-3"), ([1, 2, 4, 6, 7, 8], "1-2,4,6-8")])
def test_ranges_round_trip(positions, text):
    assert encode_ranges(positions) == text
    assert decode_ranges(text) == positions


def test_checkpoint_interval_must_be_positive():
    with pytest.raises(ValueError):
        AuditChainProjection(0)


@pytest.mark.parametrize("bad", [
    {}, {"position": 3}, {"position": 3, "hash": "xyz"}, {"position": 3, "hash": "ab"},
    {"position": -1, "hash": "0" * 64}, {"position": 3, "hash": "0" * 64, "chain": "other"},
    ["not", "a", "dict"]])
def test_malformed_digests_are_refused(bad):
    with pytest.raises(ValueError):
        check_digest(bad)


def test_digest_without_projection_is_recomputed(sqlite_url):
    from ledger.intake import record_invoice_file
    from tests.builders import export_file, invoice, parsed

    ledger = Ledger(sqlite_url)
    try:
        record_invoice_file(ledger, export_file(), [parsed(invoice())], ["Approved"])
        recomputed = current_digest(ledger, catch_up=False)      # no audit tables yet
        chained = current_digest(ledger)
        assert recomputed["hash"] == chained["hash"] and chained["events"] == 4
        assert verify(ledger).reference == "checkpoints"
    finally:
        ledger.close()
