"""Hostile site files: mutated copies of config/examples/*.toml through `emgate check-config`.

Keys deleted or renamed, values replaced by other types, random strings and numbers, lines
duplicated, files cut short, random bytes and invalid UTF-8: the command either accepts the
file (exit 0) or exits 2 with a configuration error naming the file and where in it (a line or a
key path). Any other exception is a crash, and fails the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli import main
from gateway.core.errors import ConfigError
from gateway.settings.load import load_settings

EXAMPLES = sorted((Path(__file__).parents[2] / "config" / "examples").glob("*.toml"))
FUZZ = settings(
    database=None,
    deadline=2000,  # ms per example; check-config takes ~10 ms, the rest is slack for a loaded machine
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

_KEY_LINE = re.compile(rb"^(\s*)([A-Za-z0-9_\-\"'.]+)(\s*=\s*)(.*)$")
_SECTIONS = "site|window|retry|pipeline|modbus|mqtt|signals|streams|factors|ledger|influx|http|replay|budget|alerts"
# where a problem is: file:line, "line N" (tomllib), a key path, a stream or a factor entry
_LOCATION = re.compile(rf":\d+:|line \d+|\b({_SECTIONS})\b|stream \S+/|factor |\(top level\)")

toml_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan and inf are TOML too
    st.sampled_from(["true", "false", "nan", "-inf", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "0x1F", "1e400"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).map(json.dumps),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-0123456789 ", max_size=20).map(lambda s: f'"{s}"'),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)
key_names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,12}", fullmatch=True),
    st.sampled_from(["_env_file", "_secrets_dir", "__pydantic_self__", "site", "name", "unit", "kind", "factor", "id"]),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    example = draw(st.sampled_from(EXAMPLES))
    lines = example.read_bytes().split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "rename", "value", "duplicate", "insert", "header"]))
        m = _KEY_LINE.match(lines[i])
        if op == "delete":
            del lines[i]
        elif op == "rename" and m:
            lines[i] = m.group(1) + draw(key_names).encode() + m.group(3) + m.group(4)
        elif op == "value" and m:
            lines[i] = m.group(1) + m.group(2) + m.group(3) + draw(toml_values).encode()
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, f"{draw(key_names)} = {draw(toml_values)}".encode())
        elif op == "header":
            lines.insert(i, f"[{draw(st.sampled_from(['site', 'signals.x', 'factors', 'influx']))}]".encode())
        if not lines:
            lines = [b""]
    data = b"\n".join(lines)
    tail = draw(st.sampled_from(["none", "none", "truncate", "bytes", "bad_utf8"]))
    if tail == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif tail == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    elif tail == "bad_utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82"])) + data[at:]
    return example.name, data


def check_config(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check-config", str(path)])
    return code, err.getvalue()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(example: Path) -> None:
    assert check_config(example) == (0, "")


@FUZZ
@given(mutated())
def test_mutated_site_files_are_accepted_or_a_clear_error(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        code, err = check_config(path)  # an exception other than ConfigError propagates and fails
        assert code in (0, 2), err
        if code == 2:
            assert err.startswith(f"emgate: configuration error: {path}"), err
            assert _LOCATION.search(err.replace(str(path), "FILE")), err
        # load_settings itself: a value or ConfigError naming the file, nothing else
        try:
            load_settings(path)
        except ConfigError as exc:
            text = "\n".join([str(exc), *exc.problems])
            assert str(path) in str(exc) and _LOCATION.search(text.replace(str(path), "FILE")), text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[site]\nname = "x\xff"\n', r"site\.toml:2: not UTF-8 text \(byte 0xff"),
        (b'_env_file = "/etc/passwd"\n[site]\nname = "x"\n', r"site\.toml:1: _env_file: unknown key"),
        (b'_secrets_dir = 5\n[site]\nname = "x"\n', r"site\.toml:1: _secrets_dir: unknown key"),
        (
            b'[site]\nname = "x"\n[signals.a]\nunit = "foo/h"\n',
            r"site\.toml:3: signals\.a: unknown rate unit 'foo/h'",
        ),
    ],
    ids=["invalid-utf8", "settings-option-env-file", "settings-option-secrets-dir", "unknown-rate-unit"],
)
def test_regressions_found_by_fuzzing(tmp_path: Path, content: bytes, expected: str) -> None:
    """Each crashed (UnicodeDecodeError, ValueError) or was silently obeyed (_env_file read a file)."""
    path = tmp_path / "site.toml"
    path.write_bytes(content)
    code, err = check_config(path)
    assert code == 2 and re.search(expected, err), err
