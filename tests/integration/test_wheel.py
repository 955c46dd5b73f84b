"""The wheel: built from the sources, installed in a new venv, run from outside the checkout.

What a user gets from `pip install emgate-….whl`: the `emgate` command, the factor library and
the example site files as package data (gateway.config), the native ledger walk when the build
machine can compile it. The new venv sees the test venv's site-packages through a .pth line, so
the dependencies are the ones installed already and only emgate itself comes from the wheel;
the first test proves that the installed copy is what runs.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.sim.plant import data_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# What the wheel is built from: the files deploy/Dockerfile copies into its build stage.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "gateway", "analytics", "config")
UCI_FILE = "steel_industry_energy_2018-01_to_10.csv"
JANUARY_KWH = 126_238.29  # shared/data/README.md
CALC_INPUT = {
    "method": "fuel_combustion",
    "amount": 100,
    "amount_unit": "1e4Nm3",
    "ncv_gj_per_unit": 33.0,
    "cc_tc_per_gj": 0.0708,
    "oxidation": 0.99,
}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    run_dir: Path  # an empty folder outside the checkout, the working directory of every command
    env: dict[str, str]

    def emgate(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "emgate"), *args, stdin=stdin)

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "python"), "-c", code)

    def run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, cwd=self.run_dir, env=self.env, timeout=300, check=False
        )


def _check(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"{' '.join(map(str, res.args))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel, built offline from a copy of the sources, installed alone in a new venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.is_relative_to(REPO), "the wheel must be tried outside the checkout"
    # A copy, so that the build's build/ and egg-info never touch the checkout, and so that
    # the in-place native walk of the editable install cannot slip into the wheel.
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(src)]
    _check(subprocess.run(build, capture_output=True, text=True, timeout=300, check=False))
    (wheel,) = dist.glob("emgate-*.whl")

    venv = tmp / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True, timeout=120, check=False))
    py = str(venv / "bin" / "python")
    install = [sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", str(wheel)]
    _check(subprocess.run(install, capture_output=True, text=True, timeout=300, check=False))
    site_packages = Path(
        _check(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=False)).strip()
    )
    # The dependencies: the test venv's site-packages, after the new venv's own. A directory
    # named in a .pth file is only appended to sys.path (its own .pth files, among them the
    # editable install's finder, are not run), so `gateway` can come from the wheel alone.
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "emgate_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))

    run_dir = tmp / "run"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    yield Installed(wheel, venv, site_packages, run_dir, env)


def test_the_installed_copy_runs_with_its_data_and_native_walk(installed: Installed) -> None:
    where = json.loads(
        _check(
            installed.python(
                "import json, gateway, gateway.config, importlib.util;"
                "from gateway.settings.factors import default_factor_dir;"
                "walk = importlib.util.find_spec('gateway.ledger._walk');"
                "print(json.dumps([gateway.__file__, gateway.config.__file__, str(default_factor_dir()), walk and walk.origin]))"
            )
        )
    )
    package, data, factors, walk = (Path(p) if p else None for p in where)
    assert package == installed.site_packages / "gateway" / "__init__.py"
    assert data == installed.site_packages / "gateway" / "config" / "__init__.py"
    assert factors == installed.site_packages / "gateway" / "config" / "factors"
    # the shipped data is the repository's config/, file for file
    for folder in ("factors", "examples"):
        shipped = sorted(p.name for p in (data.parent / folder).glob("*.toml"))
        assert shipped == sorted(p.name for p in (REPO / "config" / folder).glob("*.toml")) != []
        for name in shipped:
            assert (data.parent / folder / name).read_bytes() == (REPO / "config" / folder / name).read_bytes()

    with zipfile.ZipFile(installed.wheel) as whl:
        native = [n for n in whl.namelist() if re.fullmatch(r"gateway/ledger/_walk\..*\.so", n)]
    if os.environ.get("CI") == "true":  # CI machines have the compiler and headers: the walk must be built
        assert native, f"the wheel lacks the native ledger walk: {installed.wheel.name}"
    if native:
        assert walk is not None and walk.is_relative_to(installed.site_packages)

    version = _check(installed.emgate("--version")).strip()
    assert version == "emgate 0.1.0"
    assert shutil.which("emgate", path=installed.env["PATH"]) == str(installed.venv / "bin" / "emgate")


def test_calc_from_the_wheel_equals_the_checkout(installed: Installed) -> None:
    request = json.dumps(CALC_INPUT)
    out = _check(installed.emgate("calc", stdin=request))
    assert json.loads(out)["co2_t"] == pytest.approx(848.1132, abs=1e-9)
    reference = subprocess.run(
        [sys.executable, "-m", "gateway", "calc"], input=request, capture_output=True, text=True, cwd=REPO, timeout=120, check=True
    )
    assert out == reference.stdout


def test_examples_name_the_packaged_files(installed: Installed) -> None:
    listing = _check(installed.emgate("examples")).splitlines()
    names = sorted(p.stem for p in (REPO / "config" / "examples").glob("*.toml"))
    assert [line.split()[0] for line in listing] == names
    path = Path(_check(installed.emgate("examples", "uci-steel")).strip())
    assert path == installed.site_packages / "gateway" / "config" / "examples" / "uci-steel.toml"
    bad = installed.emgate("examples", "no-such-site")
    assert bad.returncode == 2 and "uci-steel" in bad.stderr


def test_replay_of_the_packaged_uci_example_equals_the_checkout(
    installed: Installed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = data_dir()
    if d is None or not (d / UCI_FILE).is_file():
        pytest.skip(f"{UCI_FILE} not found (set EMGATE_DATA_DIR to the shared data folder)")
    # January only, bytes unchanged (as tests/integration/test_export_uci.py): ten months would
    # only slow the test down
    raw = (d / UCI_FILE).read_bytes().split(b"\r\n")
    extract = tmp_path / "steel_industry_energy_2018-01.csv"
    extract.write_bytes(b"\r\n".join([raw[0], *(line for line in raw[1:] if line[3:10] == b"01/2018")]) + b"\r\n")

    site = _check(installed.emgate("examples", "uci-steel")).strip()
    wheel_out = installed.run_dir / "uci"
    summary = _check(installed.emgate("replay", "--config", site, "--input", str(extract), "--out", "uci"))
    verify = installed.emgate("ledger", "verify", "uci/ledger.sqlite")
    assert verify.returncode == 0 and "ok" in verify.stdout, verify.stdout + verify.stderr

    checkout_out = tmp_path / "checkout"
    capsys.readouterr()
    site_file = str(REPO / "config" / "examples" / "uci-steel.toml")
    assert main(["replay", "--config", site_file, "--input", str(extract), "--out", str(checkout_out)]) == 0
    reference = capsys.readouterr().out

    def figures(line: str) -> str:  # the summary without the head hash (the ledger's own) and the folder
        return re.sub(r"ledger head \S+; wrote .*", "", line.strip())

    assert figures(summary) == figures(reference) != ""
    for name in ("minutes.csv", "alerts.jsonl"):
        assert (wheel_out / name).read_bytes() == (checkout_out / name).read_bytes(), name
    with (wheel_out / "minutes.csv").open() as fh:
        kwh = sum(float(row["activity"]) * 1000.0 for row in csv.DictReader(fh))  # activity in MWh
    assert kwh == pytest.approx(JANUARY_KWH, abs=0.005)
