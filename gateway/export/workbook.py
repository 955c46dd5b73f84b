"""The export's workbook (openpyxl): the CSV tables as sheets, formatted for a person.

Byte-identical output: openpyxl stamps docProps/core.xml with the save time and gives every zip
member the current time. We save to memory, then rebuild the zip with the same members in the
same order, a fixed member date (1980-01-01, the zip epoch) and core properties whose created and
modified dates are that same fixed instant.

Table rows. openpyxl builds the workbook: its structure, the styles, the Summary sheet and each
table's header, column widths and frozen pane. The rows under a table's header are written here
as worksheet XML (`_rows_xml`), because openpyxl spends about 35 us of CPU on each cell (a cell
object, value binding, a style lookup and an XML element): 2.3 s for a month of 10 streams'
60,000 cells and 20 s for 100 streams, the export's longest step after verification. The XML
here is what openpyxl writes for the same cells (inline strings, `t="n"` numbers, the same style
ids, which openpyxl allocates: `_Styles`) at about 4 us a cell, zip included: 0.22 s for that
month of 10 streams, read back with openpyxl cell for cell the same values, number formats,
fonts and fills. openpyxl writes a placeholder row where the rows go, and the zip rebuild puts
them in its place.
"""

from __future__ import annotations

import io
import math
import numbers
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.packaging.core import DocumentProperties
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from gateway.export.documents import Column, Sheet, formula_safe

FIXED_TIME = datetime(1980, 1, 1, 0, 0, 0)
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
EXCEL_MAX_ROWS = 1_048_576
# A sheet shows at most this many table rows: nobody reads more in a spreadsheet, and each row
# adds to the file. The CSV file always has every row; the sheet says how many it left out.
SHEET_MAX_ROWS = 100_000
# Characters `_text` escapes or replaces.
_SPECIAL = re.compile(f"[&<>]|{ILLEGAL_CHARACTERS_RE.pattern}")
# What openpyxl writes where a table's rows go; replaced by them in the zip rebuild.
_PLACEHOLDER = "emgate-table-rows-{}"
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_TOTAL_FONT = Font(bold=True)
_WRAP = Alignment(wrap_text=True, vertical="top")


def build_workbook(
    summary_rows: Sequence[tuple[str, Any, str]], sheets: Sequence[Sheet], *, title: str, summary_sheet: str = "Summary"
) -> bytes:
    """XLSX bytes: a summary sheet (named `summary_sheet`) of (label, value, unit) rows, then one sheet per table.

    A table longer than SHEET_MAX_ROWS is cut, with a row saying so (the CSV has every row).
    """
    wb = Workbook(write_only=True)
    _summary_sheet(wb, summary_rows, summary_sheet)
    rows = {_placeholder_row(i): _table_sheet(wb, sheet, i) for i, sheet in enumerate(sheets)}
    props = DocumentProperties(creator="emgate", title=title, created=FIXED_TIME, modified=FIXED_TIME)
    wb.properties = props
    buf = io.BytesIO()
    wb.save(buf)
    props.modified = FIXED_TIME  # save() set it to now
    return _normalise_zip(buf.getvalue(), tostring(props.to_tree()), rows)


def build_tables_workbook(sheets: Sequence[Sheet], *, title: str) -> bytes:
    """XLSX bytes of the tables alone (no Summary sheet), by build_workbook's rules."""
    wb = Workbook(write_only=True)
    rows = {_placeholder_row(i): _table_sheet(wb, sheet, i) for i, sheet in enumerate(sheets)}
    props = DocumentProperties(creator="emgate", title=title, created=FIXED_TIME, modified=FIXED_TIME)
    wb.properties = props
    buf = io.BytesIO()
    wb.save(buf)
    props.modified = FIXED_TIME
    return _normalise_zip(buf.getvalue(), tostring(props.to_tree()), rows)


def summary_rows(s: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """The Summary sheet's (label, value, unit or scope) rows, from summary.json's document."""
    rows: list[tuple[str, Any, str]] = [
        ("Month", s["month"], ""),
        ("Site", s["site"], ""),
        ("Time zone", s["timezone"], ""),
        ("Period start", s["period"]["start"], "local"),
        ("Period end (exclusive)", s["period"]["end"], "local"),
    ]
    if s.get("complete") is False:
        rows.append(("Complete", "NO: " + str(s.get("incomplete_reason")), "do not deposit"))
    for scope, block in s["scopes"].items():
        if scope == "production":  # production minutes carry no CO2: their own sheet
            continue
        label = "compliance" if block["compliance"] else "not in the compliance total"
        rows.append((f"CO2 {scope} (t)", block["co2_t"], f"{scope} ({label})"))
        for process, t in block["by_process"].items():
            rows.append((f"  {process} (t)", t, scope))
    rows.append(("CO2 direct + indirect (t)", s["co2_t"], "direct+indirect (corporate view)"))
    dq = s["data_quality"]
    rows += [
        ("Coverage (%)", dq["coverage_pct"], "all streams"),
        ("Substituted minutes (count)", dq["substituted_minutes"], "all streams"),
        ("Estimated minutes (count)", dq["estimated_minutes"], "all streams"),
        ("Substituted + estimated share of CO2 (%)", dq["substituted_estimated_share_pct"], "all streams"),
        ("Corrections in the ledger (count)", dq.get("corrections", 0), ""),
    ]
    for scope, block in s["scopes"].items():
        rows.append(
            (
                f"Substituted + estimated share of {scope} CO2 (%)",
                block["data_quality"]["substituted_estimated_share_pct"],
                scope,
            )
        )
    b = s.get("budget")
    if b and b.get("allowance_t") is not None:
        rows.append((f"Annual allowance {b['year']} (t)", b["allowance_t"], f"{b['scope']}, calendar-linear"))
        rows.append(("Allowance for the month (t)", b["month_allowance_t"], b["scope"]))
    elif b:
        rows.append(("Allowance", b["omitted"], b["scope"]))
    led = s["ledger"]
    rows += [
        ("Ledger head row", led["head_seq"], ""),
        ("Ledger head hash", led["head_hash"], "SHA-256"),
        ("Ledger rows in the month", led["month_rows"], "current view"),
    ]
    return rows


def _summary_sheet(wb: Workbook, rows: Sequence[tuple[str, Any, str]], name: str) -> None:
    ws = wb.create_sheet(name)
    for col, width in zip("ABC", (52, 22, 28), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    ws.append([_cell(ws, h, font=_HEADER_FONT, fill=_HEADER_FILL) for h in ("Item", "Value", "Unit / scope")])
    for label, value, unit in rows:
        fmt = "#,##0.000" if isinstance(value, float) else None
        ws.append([_cell(ws, label), _cell(ws, value, number_format=fmt), _cell(ws, unit)])


def _table_sheet(wb: Workbook, sheet: Sheet, index: int) -> bytes:
    """The sheet with its header, widths and frozen pane, and a placeholder row 2; returns the
    XML of its rows from row 2 on (table rows, the note of rows left out, totals)."""
    ws = wb.create_sheet(sheet.title)
    for j, col in enumerate(sheet.columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = col.width
    ws.freeze_panes = "A2"
    ws.append([_cell(ws, c.title, font=_HEADER_FONT, fill=_HEADER_FILL, alignment=_WRAP) for c in sheet.columns])
    ws.append([_PLACEHOLDER.format(index)])
    styles = _Styles(ws, sheet.columns)
    room = min(SHEET_MAX_ROWS, EXCEL_MAX_ROWS - 1 - len(sheet.totals) - 1)
    out: list[str] = []
    r = _rows_xml(out, 2, sheet.rows[:room], styles.plain)
    if len(sheet.rows) > room:
        note = [f"{len(sheet.rows) - room} more row(s) in {sheet.filename}; the sheet shows {room}"]
        r = _rows_xml(out, r, [note], styles.bold)
    _rows_xml(out, r, sheet.totals, styles.bold)
    return "".join(out).encode()


class _Styles:
    """openpyxl's style ids for a table's cells: per column, (number, text) for plain rows and
    for bold ones (the totals). Asking a cell for its style_id registers its style with the
    workbook, which then writes it into styles.xml; 0 is the default style."""

    def __init__(self, ws: Any, columns: Sequence[Column]) -> None:
        def sid(number_format: str | None, font: Font | None) -> int:
            return _cell(ws, None, number_format=number_format, font=font).style_id

        self.plain = [(sid(c.number_format, None), 0) for c in columns]
        self.bold = [(sid(c.number_format, _TOTAL_FONT), sid(None, _TOTAL_FONT)) for c in columns]


def _rows_xml(out: list[str], r: int, rows: Sequence[Sequence[Any]], styles: Sequence[tuple[int, int]]) -> int:
    """Append rows r, r+1, ... as <row> elements; returns the next row number.

    A cell is written as openpyxl writes it: a number (numpy's too) as `t="n"` with its shortest
    round-trip repr and the column's number-format style, a bool as `t="b"`, text as an inline
    string with the characters XML cannot hold replaced by U+FFFD (openpyxl would refuse them;
    the CSV keeps them), None and "" as no value (only its style, in a bold row). A number that
    is not finite is written as text.
    """
    letters = [get_column_letter(j) for j in range(1, len(styles) + 1)]
    # Per column, the attributes each kind of value is written with; the type test runs in
    # exact-type order (float, int, str), so the usual cell costs one dict lookup and no ABC check.
    number_attrs = [_s(number_style) for number_style, _ in styles]
    text_attrs = [_s(text_style) for _, text_style in styles]
    texts: dict[str, str] = {}  # a month repeats its stream names, qualities and flags thousands of times
    for row in rows:
        cells = []
        for j, v in enumerate(row[: len(letters)]):
            t = type(v)
            if t is float and math.isfinite(v):
                cells.append(f'<c r="{letters[j]}{r}"{number_attrs[j]} t="n"><v>{v!r}</v></c>')
            elif t is int:
                cells.append(f'<c r="{letters[j]}{r}"{number_attrs[j]} t="n"><v>{v}</v></c>')
            elif t is str and v:
                xml = texts.get(v)
                if xml is None:
                    xml = texts[v] = _text(formula_safe(v))
                cells.append(f'<c r="{letters[j]}{r}"{text_attrs[j]} t="inlineStr"><is>{xml}</is></c>')
            else:
                cell = _cell_xml(f"{letters[j]}{r}", v, *styles[j])
                if cell:
                    cells.append(cell)
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
        r += 1
    return r


def _cell_xml(ref: str, v: Any, number_style: int, text_style: int) -> str:
    """Any cell, by `_rows_xml`'s rules; "" for a cell not written."""
    if v is None or (isinstance(v, str) and not v):
        # an empty cell of a bold row keeps its style, as openpyxl writes it
        return f'<c r="{ref}" s="{text_style}"/>' if text_style else ""
    if isinstance(v, bool):
        return f'<c r="{ref}"{_s(number_style)} t="b"><v>{int(v)}</v></c>'
    if isinstance(v, numbers.Integral):
        return f'<c r="{ref}"{_s(number_style)} t="n"><v>{int(v)}</v></c>'
    if isinstance(v, numbers.Real) and math.isfinite(v):
        return f'<c r="{ref}"{_s(number_style)} t="n"><v>{float(v)!r}</v></c>'
    return f'<c r="{ref}"{_s(text_style)} t="inlineStr"><is>{_text(formula_safe(str(v)))}</is></c>'


def _s(style_id: int) -> str:
    return f' s="{style_id}"' if style_id else ""


def _text(value: str) -> str:
    if _SPECIAL.search(value) is None and value == value.strip():  # most text: nothing to replace or escape
        return f"<t>{value}</t>"
    value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return f"<t{space}>{escape(value)}</t>"


def _placeholder_row(index: int) -> bytes:
    return f'<row r="2"><c r="A2" t="inlineStr"><is><t>{_PLACEHOLDER.format(index)}</t></is></c></row>'.encode()


def _cell(
    ws: Any,
    value: Any,
    *,
    number_format: str | None = None,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=formula_safe(value) if isinstance(value, str) else value)
    if number_format:
        cell.number_format = number_format
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    return cell


def _normalise_zip(data: bytes, core_xml: bytes, rows: dict[bytes, bytes]) -> bytes:
    """The zip rebuilt with fixed dates and core properties, each placeholder row replaced by
    its table's rows."""
    rows = dict(rows)  # each placeholder is taken out as it is replaced; what is left was not found
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = core_xml if info.filename == "docProps/core.xml" else src.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                for placeholder in [p for p in rows if p in payload]:
                    payload = payload.replace(placeholder, rows.pop(placeholder), 1)
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            # Level 1: a third of the default level's time for the 30 MB of sheet XML in a month of
            # 100 streams (0.15 s against 0.49 s), for a file a quarter larger (3.5 MB against 2.8 MB).
            dst.writestr(fixed, payload, compresslevel=1)
    if rows:  # openpyxl wrote a placeholder differently: never ship a table without its rows
        raise RuntimeError(f"workbook: {len(rows)} table(s) lost their rows; their placeholder row was not found")
    return out.getvalue()
