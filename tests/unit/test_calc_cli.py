"""`emgate calc`: run() with a monkeypatched stdin (the `emgate` entry point is wired elsewhere)."""

from __future__ import annotations

import argparse
import io
import json
import sys

import pytest
from numpy.testing import assert_allclose

from gateway.commands import calc


def _call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    parser = argparse.ArgumentParser(prog="emgate")
    calc.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calc"])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_add_parser_registers_calc_with_run() -> None:
    parser = argparse.ArgumentParser()
    calc.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calc"])
    assert args.command == "calc" and args.func is calc.run


@pytest.mark.parametrize(
    ("request_doc", "co2_t"),
    [
        pytest.param(
            # 100 x 33 x 0.0708 x 0.99 x 44/12 = 231.3036 x 3.6666... = 848.1132
            {
                "method": "fuel_combustion",
                "amount": 100,
                "amount_unit": "1e4Nm3",
                "ncv_gj_per_unit": 33.0,
                "cc_tc_per_gj": 0.0708,
                "oxidation": 0.99,
            },
            848.1132,
            id="fuel-gas",
        ),
        pytest.param(
            # heat basis: 1000 GJ x 0.0153 x 1.0 x 44/12 = 56.1
            {
                "method": "fuel_combustion",
                "amount": 1000,
                "amount_unit": "GJ",
                "cc_tc_per_gj": 0.0153,
                "oxidation": 1.0,
            },
            56.1,
            id="fuel-gj",
        ),
        pytest.param(
            # 50 x 0.85 x 0.98 x 44/12 = 41.65 x 3.6666... = 152.71666...
            {
                "method": "carbon_content",
                "amount": 50,
                "amount_unit": "t",
                "c_tc_per_unit": 0.85,
                "oxidation": 0.98,
            },
            152.71666666666667,
            id="carbon-content",
        ),
        pytest.param(
            {"method": "carbonate", "amount_t": 1000, "ef_tco2_per_t": 0.44}, 440.0, id="carbonate-ef"
        ),
        pytest.param(
            # 1000 x 0.9 x 0.47732 = 429.588
            {"method": "carbonate", "amount_t": 1000, "mineral": "dolomite", "purity": 0.9},
            429.588,
            id="carbonate-mineral",
        ),
        pytest.param({"method": "electrode", "amount_t": 2, "ef_tco2_per_t": 3.663}, 7.326, id="electrode"),
        pytest.param(
            # (100 x 0.045 + 20 x 0.002 - 115 x 0.0042) x 44/12 = 4.057 x 3.6666... = 14.875666...
            {
                "method": "carbon_balance",
                "inputs": [
                    {"amount_t": 100, "carbon_fraction": 0.045},
                    {"amount_t": 20, "carbon_fraction": 0.002},
                ],
                "outputs": [{"amount_t": 115, "carbon_fraction": 0.0042}],
            },
            14.875666666666667,
            id="balance",
        ),
        pytest.param(
            # (43 - 10 x 2.3578) x 44/12 = 19.422 x 3.6666... = 71.214
            {
                "method": "carbon_balance",
                "inputs": [{"amount_t": 50, "carbon_fraction": 0.86}],
                "outputs": [{"amount_1e4nm3": 10, "c_tc_per_1e4nm3": 2.3578}],
            },
            71.214,
            id="balance-gas",
        ),
        pytest.param(
            # 126.23829 MWh x 0.4585 = 57.880255965 (UCI plant, January 2018)
            {"method": "electricity", "energy_mwh": 126.23829, "ef_tco2_per_mwh": 0.4585},
            57.880255965,
            id="electricity",
        ),
        pytest.param({"method": "heat", "heat_gj": 100, "ef_tco2_per_gj": 0.11}, 11.0, id="heat"),
    ],
)
def test_methods(monkeypatch, capsys, request_doc: dict, co2_t: float) -> None:
    rc, out, err = _call(monkeypatch, capsys, json.dumps(request_doc))
    assert rc == 0, err
    assert err == ""
    result = json.loads(out)
    assert result["method"] == request_doc["method"]
    assert_allclose(result["co2_t"], co2_t, rtol=1e-12)
    assert_allclose(result["co2_kg"], co2_t * 1000, rtol=1e-12)
    assert result["warnings"] == []


def test_negative_balance_is_reported_with_warning(monkeypatch, capsys) -> None:
    # (1 x 0.1 - 2 x 0.1) x 44/12 = -0.3666...
    doc = {
        "method": "carbon_balance",
        "inputs": [{"amount_t": 1, "carbon_fraction": 0.1}],
        "outputs": [{"amount_t": 2, "carbon_fraction": 0.1}],
    }
    rc, out, _ = _call(monkeypatch, capsys, json.dumps(doc))
    result = json.loads(out)
    assert rc == 0
    assert_allclose(result["co2_t"], -0.36666666666666664, rtol=1e-12)
    assert "negative carbon balance" in result["warnings"][0]


def test_carbonate_echoes_derived_ef(monkeypatch, capsys) -> None:
    rc, out, _ = _call(
        monkeypatch, capsys, '{"method": "carbonate", "amount_t": 1, "mineral": "limestone", "purity": 0.9}'
    )
    assert rc == 0
    assert_allclose(json.loads(out)["ef_tco2_per_t"], 0.395739, rtol=1e-12)  # 0.9 x 0.43971


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        pytest.param("", "stdin is empty", id="empty"),
        pytest.param("{method: x}", "not valid JSON", id="not-json"),
        pytest.param("[1, 2]", "one JSON object", id="not-object"),
        pytest.param('{"amount_t": 1}', "method: missing", id="no-method"),
        pytest.param('{"method": "sorcery"}', "unknown method 'sorcery'", id="unknown-method"),
        pytest.param('{"method": "electrode", "amount_t": 2}', "ef_tco2_per_t: missing", id="missing-key"),
        pytest.param(
            '{"method": "electrode", "amount_t": 2, "ef_tco2_per_t": 3.663, "ef": 1}',
            "ef: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            '{"method": "electrode", "amount_t": -2, "ef_tco2_per_t": 3.663}',
            "amount_t: Input should be greater than or equal to 0 (got -2)",
            id="negative",
        ),
        pytest.param(
            '{"method": "fuel_combustion", "amount": 1, "amount_unit": "t", "ncv_gj_per_unit": 28,'
            ' "cc_tc_per_gj": 0.029, "oxidation": 1.2}',
            "oxidation: Input should be less than or equal to 1",
            id="fraction-above-1",
        ),
        pytest.param(
            '{"method": "fuel_combustion", "amount": 1, "amount_unit": "GJ", "ncv_gj_per_unit": 28,'
            ' "cc_tc_per_gj": 0.029, "oxidation": 1}',
            "left out (or 1) when amount_unit is 'GJ'",
            id="gj-with-ncv",
        ),
        pytest.param(
            '{"method": "fuel_combustion", "amount": 1, "amount_unit": "t",'
            ' "cc_tc_per_gj": 0.029, "oxidation": 1}',
            "ncv_gj_per_unit is required",
            id="t-without-ncv",
        ),
        pytest.param(
            '{"method": "fuel_combustion", "amount": 1, "amount_unit": "kg", "ncv_gj_per_unit": 28,'
            ' "cc_tc_per_gj": 0.029, "oxidation": 1}',
            "amount_unit:",
            id="bad-unit",
        ),
        pytest.param(
            '{"method": "electrode", "amount_t": "2", "ef_tco2_per_t": 3.663}',
            "amount_t: Input should be a valid number (got '2')",
            id="string-number",
        ),
        pytest.param(
            '{"method": "carbonate", "amount_t": 1, "mineral": "chalk", "purity": 1}',
            "mineral:",
            id="unknown-mineral",
        ),
        pytest.param(
            '{"method": "carbonate", "amount_t": 1, "ef_tco2_per_t": 0.44, "mineral": "limestone", '
            '"purity": 1}',
            "not both",
            id="carbonate-both",
        ),
        pytest.param(
            '{"method": "carbon_balance", "inputs": [{"amount_t": 1, "carbon_fraction": 1.5}]}',
            "inputs[0].carbon_fraction: Input should be less than or equal to 1",
            id="balance-fraction",
        ),
        pytest.param(
            '{"method": "electricity", "energy_mwh": NaN, "ef_tco2_per_mwh": 0.5}', "energy_mwh:", id="nan"
        ),
        pytest.param("[" * 100_000 + "]" * 100_000, "nests JSON arrays or objects too deeply", id="deep-nesting"),
        pytest.param(
            '{"method": "electrode", "amount_t": ' + "9" * 5000 + ', "ef_tco2_per_t": 1}',
            "holds a number that cannot be read",
            id="5000-digits",
        ),
        pytest.param(
            '{"method": "electrode", "amount_t": ' + "9" * 4000 + ', "ef_tco2_per_t": 1}',
            "amount_t",
            id="4000-digits",
        ),
        pytest.param(
            '{"method": "electrode", "amount_t": 1e308, "ef_tco2_per_t": 10}',
            "the result overflows a float",
            id="overflow",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, stdin: str, expected: str) -> None:
    rc, out, err = _call(monkeypatch, capsys, stdin)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("emgate calc: ")
    assert expected in err, err
