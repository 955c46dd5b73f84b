"""The monthly registry export (`emgate export`): see monthly.py and docs/export.md."""

from gateway.export.monthly import ExportInputError, ExportResult, LedgerIntegrityError, export_month

__all__ = ["ExportInputError", "ExportResult", "LedgerIntegrityError", "export_month"]
