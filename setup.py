"""The one native part of emgate, built when the machine can and optional when it cannot.

gateway/ledger/_walk.c walks the ledger's hash chain through SQLite's C API and OpenSSL's
SHA-256 (Debian: libsqlite3-dev, libssl-dev; scripts/install-services.sh installs both). Without
a compiler or those headers the install still succeeds and the same walk runs in Python
(gateway/ledger/audit.py), only slower: `emgate ledger verify` says which one ran.
Everything else about the distribution is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.ledger._walk",
            sources=["gateway/ledger/_walk.c"],
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
