"""manifest.json (what the export wrote, with digests) and restatements (what changed since).

A restatement is how a month's figures change after they were exported: never silently. Each
export leaves summary.json in its directory; the next export of the same month into the same
directory compares its figures with it. If any figure differs, restatement.json gains an entry
(old, new, difference per scope and process, the ledger heads of both exports, and the
corrections appended in between with their reasons) and restatement.csv lists every entry's
lines. Entries are never removed, so the directory keeps the month's whole history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr

from gateway.export.documents import Column, Sheet

MANIFEST_SCHEMA = "emgate.export.manifest/1"
RESTATEMENT_SCHEMA = "emgate.export.restatement/1"
TOTAL = "(total)"


def json_bytes(doc: Any) -> bytes:
    """The one JSON encoding every export file uses: stable key order, UTF-8, trailing newline."""
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def build_manifest(files: Mapping[str, bytes], header: Mapping[str, Any]) -> bytes:
    """manifest.json: `header` plus files: [{path, bytes, sha256}] sorted by path."""
    doc = {
        "schema": MANIFEST_SCHEMA,
        **header,
        "files": [
            {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        ],
    }
    return json_bytes(doc)


REDACTED = b"**********"


def config_sha256(config_bytes: bytes, settings: BaseModel) -> str:
    """The manifest's `config_sha256`: SHA-256 of the site file's bytes with every secret value
    in it (each SecretStr of the loaded settings: InfluxDB token, MQTT passwords, and credentials
    written into influx.url) replaced by `**********`. The digest identifies the configuration
    without making the manifest, which travels with the export, a way to test a guessed password.
    Secrets read from token_file/password_file are not in the file and change nothing."""
    redacted = config_bytes
    for secret in sorted(_secrets(settings), key=len, reverse=True):
        for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1]}:  # as written, or escaped in a TOML string
            if form:
                redacted = redacted.replace(form.encode(), REDACTED)
    return hashlib.sha256(redacted).hexdigest()


def _secrets(node: Any) -> set[str]:
    """Every SecretStr value in a settings model (nested models, lists and dicts)."""
    if isinstance(node, SecretStr):
        return {node.get_secret_value()}
    if isinstance(node, BaseModel):
        return set().union(*(_secrets(getattr(node, name)) for name in type(node).model_fields))
    if isinstance(node, Mapping):
        return set().union(*(_secrets(v) for v in node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*(_secrets(v) for v in node))
    return set()


def figures_g(summary: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(scope, process) -> grams of a summary document, with (scope, TOTAL) per scope."""
    out: dict[tuple[str, str], int] = {}
    for scope, block in summary["scopes"].items():
        for process, t in block["by_process"].items():
            out[(scope, process)] = round(float(t) * 1e6)
        out[(scope, TOTAL)] = round(float(block["co2_t"]) * 1e6)
    out[("direct+indirect", TOTAL)] = round(float(summary["co2_t"]) * 1e6)
    return out


def restatement_entry(
    previous: Mapping[str, Any], current: Mapping[str, Any], corrections: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The restatement of `previous` by `current` (two summary documents), or None if no figure differs."""
    old, new = figures_g(previous), figures_g(current)
    if old == new:
        return None
    scope_order = {"direct": 0, "indirect": 1, "direct+indirect": 3}
    keys = sorted(set(old) | set(new), key=lambda k: (scope_order.get(k[0], 2), k[0], k[1] == TOTAL, k[1]))
    lines = [
        {
            "scope": s,
            "process": p,
            "old_co2_t": old.get((s, p), 0) / 1e6,
            "new_co2_t": new.get((s, p), 0) / 1e6,
            "difference_co2_t": (new.get((s, p), 0) - old.get((s, p), 0)) / 1e6,
        }
        for s, p in keys
    ]
    prev_head = int(previous["ledger"]["head_seq"])
    return {
        "previous_export": {
            "ledger_head_seq": prev_head,
            "ledger_head_hash": previous["ledger"]["head_hash"],
        },
        "this_export": {
            "ledger_head_seq": current["ledger"]["head_seq"],
            "ledger_head_hash": current["ledger"]["head_hash"],
        },
        "lines": lines,
        "corrections_since_previous_export": [c for c in corrections if int(c["seq"]) > prev_head],
    }


def append_restatement(
    existing: Mapping[str, Any] | None, entry: Mapping[str, Any], *, month: str, site: str
) -> dict[str, Any]:
    entries = list(existing["restatements"]) if existing else []
    entries.append({"number": len(entries) + 1, **entry})
    return {"schema": RESTATEMENT_SCHEMA, "month": month, "site": site, "restatements": entries}


def restatement_sheet(doc: Mapping[str, Any]) -> Sheet:
    cols = [
        Column("number", "Restatement", "0", 11),
        Column("previous_head_seq", "Previous ledger head", "0", 12),
        Column("this_head_seq", "This ledger head", "0", 12),
        Column("scope", "Scope", None, 15),
        Column("process", "Process", None, 18),
        Column("old_co2_t", "Old CO2 (t)", "#,##0.000", 13),
        Column("new_co2_t", "New CO2 (t)", "#,##0.000", 13),
        Column("difference_co2_t", "Difference (t)", "#,##0.000", 13),
    ]
    sheet = Sheet(
        "restatement.csv", "Restatements", cols, note="figures changed after the month was exported"
    )
    for e in doc["restatements"]:
        for ln in e["lines"]:
            sheet.rows.append(
                [
                    e["number"],
                    e["previous_export"]["ledger_head_seq"],
                    e["this_export"]["ledger_head_seq"],
                    ln["scope"],
                    ln["process"],
                    ln["old_co2_t"],
                    ln["new_co2_t"],
                    ln["difference_co2_t"],
                ]
            )
    return sheet
