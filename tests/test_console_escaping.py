"""What reaches a terminal from outside (file names, invoice fields) is escaped."""
from __future__ import annotations

from commands import output as console


def test_table_and_brief_escape_control_and_bidi_characters():
    rows = [{"ref": "V1/INV\x1b[2J\x07", "name": "evil\u202etxt.csv"}]
    text = console.table(rows, (("REF", lambda r: r["ref"]), ("NAME", lambda r: r["name"])))
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "V1/INV\\x1b[2J\\x07" in text and "evil\\u202etxt.csv" in text
    assert console.brief({"x": "a\x9bb"}) == '{"x":"a\\x9bb"}'
    assert console.printable("tab\tkept? no: \udce9") == "tab\\tkept? no: \\udce9"
