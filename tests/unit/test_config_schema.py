"""`emgate config-schema` and docs/config-reference.md come from the same models and stay current."""

import importlib.util
import json
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.commands.demo import DEMO_CONFIG
from gateway.settings.site import GatewaySettings

REPO = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", REPO / "scripts" / "gen_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_schema_prints_the_models_json_schema(capsys) -> None:
    assert main(["config-schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    expected = GatewaySettings.model_json_schema()
    assert schema["properties"] == expected["properties"]
    assert schema["$defs"] == expected["$defs"]
    assert schema["required"] == ["site"]
    assert schema["additionalProperties"] is False
    assert schema["$schema"].endswith("/2020-12/schema")


def test_config_schema_accepts_the_demo_site_and_rejects_a_misspelt_key(tmp_path) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema not installed; the shape is checked above"
    )
    assert main(["config-schema", "--output", str(tmp_path / "schema.json")]) == 0
    schema = json.loads((tmp_path / "schema.json").read_text())
    site = tomllib.loads(DEMO_CONFIG.read_text())
    jsonschema.validate(site, schema)
    site["window"]["dealy_s"] = 2
    with pytest.raises(jsonschema.ValidationError, match="dealy_s"):
        jsonschema.validate(site, schema)


def test_config_reference_is_up_to_date() -> None:
    gen = load_generator()
    current = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert current == gen.render(), (
        "docs/config-reference.md is stale: run python scripts/gen_config_reference.py"
    )
    assert gen.main(["--check"]) == 0


def test_config_reference_covers_every_section_and_key() -> None:
    text = load_generator().render()
    for name in GatewaySettings.model_fields:
        assert f"`[{name}" in text or f"`[[{name}" in text, name
    # a nested key with its bounds and description
    assert "| `max_registers_per_read` | integer | `125` | ≥1, ≤125 |" in text
    assert '| `bind` | string | `"127.0.0.1:8080"` |' in text


def test_check_mode_reports_a_stale_file(tmp_path, capsys) -> None:
    gen = load_generator()
    stale = tmp_path / "ref.md"
    stale.write_text("# old\n")
    assert gen.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert gen.main(["--output", str(stale)]) == 0
    assert gen.main(["--check", "--output", str(stale)]) == 0
