"""Safe, incremental XML access shared by the invoice and vendor readers.

defusedxml's hardened expat parser with DTDs forbidden (so no entity expansion and no external
entities: a billion-laughs or XXE file is rejected, never expanded), driven by iterparse. Each
child of the root (an <Invoice>, a <Vendor>) is handed over complete and then cleared, so
memory holds one record, not the file.

Encoding: the XML's own BOM or declaration decides, as XML requires. Only when the file has
neither and the configured encoding is not UTF-8 is the configured one imposed (expat would
otherwise assume UTF-8). Bytes that do not decode are a well-formedness error with line/column.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml.common import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from adapters.stampli.errors import ExportFileError

_DECLARED = re.compile(rb"^<\?xml[^>]*?encoding\s*=", re.ASCII)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def local(tag: object) -> str:
    """Tag without a namespace: {urn:x}Invoice -> Invoice."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def text_of(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def children(element: Element) -> dict[str, Element]:
    """First child per local name."""
    found: dict[str, Element] = {}
    for child in element:
        found.setdefault(local(child.tag), child)
    return found


def iter_records(path: Path, encoding: str, entity: str, tag: str, config_key: str
                 ) -> Iterator[tuple[int, Element, dict[str, str]]]:
    """(1-based index among <tag> children, element, root attributes) for each <tag> under a
    <StampliExport entity="..."> root. Raises ExportFileError for anything unreadable."""
    name = path.name
    parser = DefusedXMLParser(target=TreeBuilder(), encoding=_imposed(path, encoding),
                              forbid_dtd=True, forbid_entities=True, forbid_external=True)
    depth, index = 0, 0
    root: Element | None = None
    root_attrib: dict[str, str] = {}
    try:
        with open(path, "rb") as stream:
            for event, element in iterparse(stream, events=("start", "end"), parser=parser):
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root, root_attrib = element, dict(element.attrib)
                        _check_root(name, element, entity)
                    continue
                depth -= 1
                if depth == 1 and root is not None:
                    if local(element.tag) == tag:
                        index += 1
                        yield index, element, root_attrib
                    root.clear()          # drop the finished record (and any whitespace)
    except DefusedXmlException as exc:
        raise ExportFileError(
            name, 0, "", f"the XML declares a DTD or entities ({type(exc).__name__}); they are "
            f"forbidden (no entity expansion, no external entities), so the file is rejected; "
            f"have Stampli export plain XML") from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise ExportFileError(
            name, line, "", f"not well-formed XML at column {column + 1} ({_reason(exc)}); the "
            f"file may be truncated or not written as its declared encoding (configured: "
            f"{config_key}.encoding = {encoding!r}); nothing from it is used") from None
    except (LookupError, UnicodeError) as exc:
        raise ExportFileError(name, 0, "", f"cannot decode the XML ({exc}); have Stampli export "
                              f"UTF-8 or fix {config_key}.encoding") from None
    if root is None:  # pragma: no cover - expat reports "no element found" first
        raise ExportFileError(name, 0, "", "no XML root element")


def _check_root(name: str, root: Element, entity: str) -> None:
    if local(root.tag) != "StampliExport":
        raise ExportFileError(name, 1, "", f"the root element is <{local(root.tag)}>; expected "
                              f"<StampliExport entity=\"{entity}\">")
    found = root.get("entity")
    if found is not None and found != entity:
        raise ExportFileError(name, 1, "", f"this is a Stampli {found!r} export; expected "
                              f"entity=\"{entity}\" (check the file name patterns in the config)")


def _imposed(path: Path, encoding: str) -> str | None:
    """The encoding to impose on expat, or None to let the document decide."""
    try:
        if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
            return None
    except LookupError:
        return None  # reported by the CSV side of config checks; XML declares its own
    with open(path, "rb") as stream:
        head = stream.read(256)
    if head.startswith(_BOMS) or _DECLARED.match(head):
        return None
    return encoding


def _reason(exc: ParseError) -> str:
    return re.sub(r": line \d+, column \d+$", "", str(exc))
