"""The export's workbook (openpyxl): the CSV tables as sheets, formatted for a person.

Byte-identical output: openpyxl stamps docProps/core.xml with the save time and gives every zip
member the current time. We save to memory, then rebuild the zip with the same members in the
same order, a fixed member date (1980-01-01, the zip epoch) and core properties whose created and
modified dates are that same fixed instant.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.packaging.core import DocumentProperties
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from gateway.export.documents import Column, Sheet

FIXED_TIME = datetime(1980, 1, 1, 0, 0, 0)
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
EXCEL_MAX_ROWS = 1_048_576
# A sheet shows at most this many table rows. Nobody reads more in a spreadsheet, and without
# lxml openpyxl writes about 30 us per cell: 100,000 flagged minutes already take ~40 s. The CSV
# file always has every row; the sheet says how many it left out.
SHEET_MAX_ROWS = 100_000
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_TOTAL_FONT = Font(bold=True)
_WRAP = Alignment(wrap_text=True, vertical="top")


def build_workbook(
    summary_rows: Sequence[tuple[str, Any, str]], sheets: Sequence[Sheet], *, title: str
) -> bytes:
    """XLSX bytes: a Summary sheet of (label, value, unit) rows, then one sheet per table.

    A table longer than SHEET_MAX_ROWS is cut, with a row saying so (the CSV has every row).
    """
    wb = Workbook(write_only=True)
    _summary_sheet(wb, summary_rows)
    for sheet in sheets:
        _table_sheet(wb, sheet)
    props = DocumentProperties(creator="emgate", title=title, created=FIXED_TIME, modified=FIXED_TIME)
    wb.properties = props
    buf = io.BytesIO()
    wb.save(buf)
    props.modified = FIXED_TIME  # save() set it to now
    return _normalise_zip(buf.getvalue(), tostring(props.to_tree()))


def _summary_sheet(wb: Workbook, rows: Sequence[tuple[str, Any, str]]) -> None:
    ws = wb.create_sheet("Summary")
    for col, width in zip("ABC", (52, 22, 28), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    ws.append([_cell(ws, h, font=_HEADER_FONT, fill=_HEADER_FILL) for h in ("Item", "Value", "Unit / scope")])
    for label, value, unit in rows:
        fmt = "#,##0.000" if isinstance(value, float) else None
        ws.append([_cell(ws, label), _cell(ws, value, number_format=fmt), _cell(ws, unit)])


def _table_sheet(wb: Workbook, sheet: Sheet) -> None:
    ws = wb.create_sheet(sheet.title)
    for j, col in enumerate(sheet.columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = col.width
    ws.freeze_panes = "A2"
    ws.append(
        [_cell(ws, c.title, font=_HEADER_FONT, fill=_HEADER_FILL, alignment=_WRAP) for c in sheet.columns]
    )
    room = min(SHEET_MAX_ROWS, EXCEL_MAX_ROWS - 1 - len(sheet.totals) - 1)
    for row in sheet.rows[:room]:
        ws.append(_row(ws, sheet.columns, row))
    if len(sheet.rows) > room:
        ws.append(
            [
                _cell(
                    ws,
                    f"{len(sheet.rows) - room} more row(s) in {sheet.filename}; the sheet shows {room}",
                    font=_TOTAL_FONT,
                )
            ]
        )
    for row in sheet.totals:
        ws.append(_row(ws, sheet.columns, row, font=_TOTAL_FONT))


def _row(
    ws: Any, columns: Sequence[Column], values: Sequence[Any], font: Font | None = None
) -> list[WriteOnlyCell]:
    return [
        _cell(ws, v, number_format=c.number_format if isinstance(v, int | float) else None, font=font)
        for c, v in zip(columns, values, strict=True)
    ]


def _cell(
    ws: Any,
    value: Any,
    *,
    number_format: str | None = None,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    if number_format:
        cell.number_format = number_format
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    return cell


def _normalise_zip(data: bytes, core_xml: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = core_xml if info.filename == "docProps/core.xml" else src.read(info.filename)
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, payload)
    return out.getvalue()
