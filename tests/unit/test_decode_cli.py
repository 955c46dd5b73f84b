"""`emgate decode`: parse, decode, print the value alone; one-line errors with exit 2."""

from __future__ import annotations

import argparse

import pytest

from gateway.commands import decode


def run_decode(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="emgate")
    decode.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["decode", *argv])
    assert args.func is decode.run
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["--type", "FLOAT32", "--byte-order", "ABCD", "0x42F6", "0xE979"], "123.45600128173828"),
        (["--type", "float32", "--byte-order", "cdab", "0xE979", "0x42F6"], "123.45600128173828"),
        (["--type", "Float32", "--byte-order", "BADC", "0xf642", "0x79e9"], "123.45600128173828"),
        (["--type", "FLOAT32", "--byte-order", "DCBA", "31209", "63042"], "123.45600128173828"),
        (["--type", "INT32", "--byte-order", "ABCD", "0xFFFF", "0xFFFE"], "-2"),
        (["--type", "INT16", "--byte-order", "ABCD", "65535"], "-1"),
        (["--type", "UINT16", "--byte-order", "BADC", "0x3412"], "4660"),
        (["--type", "UINT16", "--byte-order", "ABCD", "00017"], "17"),  # leading zeros are decimal
        (
            ["--type", "UINT64", "--byte-order", "ABCD", "0xFFFF", "0xFFFF", "0xFFFF", "0xFFFF"],
            "18446744073709551615",
        ),
        (["--type", "FLOAT64", "--byte-order", "ABCD", "0x3FF0", "0", "0", "0"], "1.0"),
        (["--type", "FLOAT16", "--byte-order", "ABCD", "0x3E00"], "1.5"),
        (["--type", "FLOAT32", "--byte-order", "ABCD", "0x7FC0", "0"], "nan"),
        (["--type", "BIT", "--byte-order", "ABCD", "--bit", "3", "0x0008"], "1"),
        (["--type", "BIT", "--byte-order", "ABCD", "--bit", "2", "0x0008"], "0"),
        (["--type", "STRING", "--byte-order", "ABCD", "0x4541", "0x462D", "0x3200"], "EAF-2"),
        # scale 1 and offset 0 keep integers; anything else prints a float repr
        (["--type", "UINT16", "--byte-order", "ABCD", "--scale", "1", "--offset", "0", "1234"], "1234"),
        (["--type", "UINT16", "--byte-order", "ABCD", "--scale", "0.1", "1234"], "123.4"),
        (["--type", "UINT16", "--byte-order", "ABCD", "--scale", "0.5", "100"], "50.0"),
        (["--type", "INT16", "--byte-order", "ABCD", "--offset", "-40", "100"], "60.0"),
        (
            ["--type", "INT16", "--byte-order", "ABCD", "--scale", "0.1", "--offset", "-273.15", "3000"],
            repr(3000 * 0.1 - 273.15),
        ),
        (["--type", "FLOAT32", "--byte-order", "ABCD", "--scale", "2", "0x3FC0", "0"], "3.0"),
    ],
)
def test_decode_prints_the_value_alone(argv, printed, capsys):
    code, out, err = run_decode(argv, capsys)
    assert (code, out, err) == (0, printed + "\n", "")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--type", "UINT16", "--byte-order", "ABCD", "70000"], "word 1 '70000' is 70000, outside 0..65535"),
        (["--type", "UINT16", "--byte-order", "ABCD", "0x10000"], "outside 0..65535"),
        (["--type", "UINT16", "--byte-order", "ABCD", "zz"], "word 1 'zz' is not a decimal or 0x hex number"),
        (["--type", "UINT32", "--byte-order", "ABCD", "1", "0xg1"], "word 2 '0xg1' is not a decimal"),
        (["--type", "UINT16", "--byte-order", "ABCD", "1.5"], "not a decimal or 0x hex number"),
        (["--type", "UINT16", "--byte-order", "ABCD", "1_000"], "not a decimal or 0x hex number"),
        (["--type", "FLOAT32", "--byte-order", "ABCD", "0x42F6"], "FLOAT32 needs 2 words, got 1"),
        (["--type", "INT16", "--byte-order", "ABCD", "1", "2"], "INT16 needs 1 word, got 2"),
        (["--type", "FLOAT64", "--byte-order", "ABCD", "1", "2", "3"], "FLOAT64 needs 4 words, got 3"),
        (["--type", "REAL", "--byte-order", "ABCD", "1"], "unknown --type 'REAL'; use one of INT16, UINT16"),
        (
            ["--type", "INT16", "--byte-order", "ACBD", "1"],
            "unknown --byte-order 'ACBD'; use one of ABCD, DCBA",
        ),
        (["--type", "BIT", "--byte-order", "ABCD", "1"], "--type BIT needs --bit N"),
        (["--type", "BIT", "--byte-order", "ABCD", "--bit", "16", "1"], "bit index 0..15"),
        (["--type", "INT16", "--byte-order", "ABCD", "--bit", "1", "1"], "--bit applies to --type BIT only"),
        (["--type", "STRING", "--byte-order", "ABCD", "--scale", "2", "0x4142"], "not STRING"),
        (["--type", "STRING", "--byte-order", "ABCD", "0xC3A9"], "non-ASCII byte 0xC3"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, reason, capsys):
    code, out, err = run_decode(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith("emgate decode: error: ")
    assert reason in err


@pytest.mark.parametrize(
    "argv",
    [["--byte-order", "ABCD", "1"], ["--type", "INT16", "1"], ["--type", "INT16", "--byte-order", "ABCD"]],
)
def test_missing_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_decode(argv, capsys)
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err
