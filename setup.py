"""What the distribution carries: the packages, the shipped data and the optional native walk.

Metadata, dependencies and tool settings are in pyproject.toml; this file says which files go
into a wheel, because one of them pyproject.toml cannot express beside package discovery:

- `gateway` and `analytics`, every subpackage found (a new one needs no edit here);
- `gateway.config` is the repository's top-level config/ folder (the factor library and the
  example site files, which users and the documentation know as config/factors/... and
  config/examples/...). It stays where it is and is installed under the gateway package, where
  gateway/settings/shipped.py finds it with importlib.resources;
- gateway/ledger/_walk.c, which walks the ledger's hash chain through SQLite's C API and
  OpenSSL's SHA-256 (Debian: libsqlite3-dev, libssl-dev; scripts/install-services.sh installs
  both). Without a compiler or those headers the install still succeeds and the same walk runs
  in Python (gateway/ledger/audit.py), only slower: `emgate ledger verify` says which one ran.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["gateway", "gateway.*", "analytics", "analytics.*"]), "gateway.config"],
    package_dir={"gateway.config": "config"},
    # exactly these data files: not whatever else lies in the package folders (_walk.c, say)
    include_package_data=False,
    package_data={
        "gateway.config": ["examples/*.toml", "factors/*.toml"],
        "gateway.http": ["*.html", "*.js"],
    },
    ext_modules=[
        Extension(
            "gateway.ledger._walk",
            sources=["gateway/ledger/_walk.c"],
            depends=["gateway/ledger/_walk_layout.h"],  # generated: scripts/gen_walk_layout.py
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    ],
)
