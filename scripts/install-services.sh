#!/usr/bin/env bash
# Installs the real peers the integration tests run against (tests/services/):
#   - Debian packages: mosquitto, its clients, socat, libmodbus5, chromium + driver, curl, and
#     the headers the native ledger walk compiles against (gcc, libsqlite3-dev, libssl-dev)
#   - influxd OSS 1.8.10, built from its Go module into ~/.cache/emgate (no registry ships it)
# Idempotent: what is present is left alone, so a second run only checks.
# Installing packages needs root or passwordless sudo. Without them the script says what is
# missing and, outside CI, carries on: the tests that need a missing peer skip with a reason.
set -euo pipefail

INFLUXD_VERSION=1.8.10
INFLUXD_DIR="$HOME/.cache/emgate/influxd-$INFLUXD_VERSION"
INFLUXD_MODULE="github.com/influxdata/influxdb/cmd/influxd@v$INFLUXD_VERSION"
PY="${PY:-python3}"

say() { printf '[services] %s\n' "$*"; }
in_ci() { case "${CI:-}" in true | TRUE | True | 1 | yes) return 0 ;; *) return 1 ;; esac; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}
problems=0
script_start=$SECONDS

# ---- which packages are missing -----------------------------------------------------------
want=()
have mosquitto || want+=(mosquitto)
{ have mosquitto_pub && have mosquitto_sub; } || want+=(mosquitto-clients)
have socat || want+=(socat)
{ package_installed libmodbus5 || ldconfig -p 2>/dev/null | grep -q 'libmodbus\.so\.5'; } || want+=(libmodbus5)
have chromium || want+=(chromium)
have chromedriver || want+=(chromium-driver)
have curl || want+=(curl)
# Go fetches modules over HTTPS; minimal Debian images have no CA bundle.
[ -e /etc/ssl/certs/ca-certificates.crt ] || want+=(ca-certificates)
# make venv needs python3 with ensurepip; Debian splits ensurepip into python3-venv.
if ! have "$PY"; then
    want+=(python3 python3-venv)
elif ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    want+=(python3-venv)
fi
# The native ledger walk (setup.py) compiles against SQLite's and OpenSSL's headers and Python's;
# without them the install still works and the walk runs in Python, slower.
have gcc || want+=(gcc)
package_installed libsqlite3-dev || want+=(libsqlite3-dev)
package_installed libssl-dev || want+=(libssl-dev)
if have "$PY" && ! "$PY" -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
    want+=(python3-dev)
fi
GO="$(command -v go || true)"
for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [ -n "$GO" ] || { [ -x "$candidate" ] && GO=$candidate; }
done
# Debian 12's golang-go (1.19) builds influxd 1.8.10 (its go.mod asks for Go 1.13).
[ -n "$GO" ] || [ -x "$INFLUXD_DIR/influxd" ] || want+=(golang-go)

# ---- install them --------------------------------------------------------------------------
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        as_root=(none)
    fi
fi

if [ ${#want[@]} -eq 0 ]; then
    say "packages: all present"
elif [ "${as_root[0]:-}" = none ]; then
    say "MISSING packages: ${want[*]}"
    say "  not root and no passwordless sudo; as root run:"
    say "  apt-get update && apt-get install -y --no-install-recommends ${want[*]}"
    problems=1
elif ! command -v apt-get >/dev/null 2>&1; then
    say "MISSING packages: ${want[*]} (Debian names); no apt-get here, install them by hand"
    problems=1
else
    step_start=$SECONDS
    say "installing: ${want[*]}"
    # Keep package scripts from starting system services (mosquitto's would listen on 1883):
    # invoke-rc.d and deb-systemd-invoke skip any start when policy-rc.d exits 101.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${as_root[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=yes
        trap '"${as_root[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${want[@]}"
    if [ -n "$created_policy" ]; then
        "${as_root[@]}" rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    # The tests start their own broker on free ports; never leave the packaged one enabled.
    if [[ " ${want[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
        "${as_root[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
    say "packages installed in $((SECONDS - step_start))s"
fi

# ---- influxd -------------------------------------------------------------------------------
if [ -x "$INFLUXD_DIR/influxd" ]; then
    say "influxd $INFLUXD_VERSION: cached at $INFLUXD_DIR/influxd"
else
    [ -n "$GO" ] || GO="$(command -v go || true)" # golang-go may just have been installed
    if [ -z "$GO" ]; then
        say "MISSING go: cannot build influxd $INFLUXD_VERSION (needs Go >= 1.13)."
        say "  install Go (Debian: apt-get install golang-go) and run make services again"
        problems=1
    else
        step_start=$SECONDS
        say "building influxd $INFLUXD_VERSION with $("$GO" version) (cold: 2-5 minutes)"
        mkdir -p "$INFLUXD_DIR"
        build_log="$(mktemp)"
        build() {
            # Pure Go: flux v0.65 keeps its Rust parser behind the libflux tag, so no cgo.
            env GOBIN="$INFLUXD_DIR" CGO_ENABLED=0 "$@" "$GO" install -trimpath -ldflags='-s -w' \
                "$INFLUXD_MODULE" 2>&1 | tee "$build_log"
            return "${PIPESTATUS[0]}"
        }
        if ! build; then
            if grep -q 'verifying ' "$build_log"; then
                say "module checksum verification failed (checksum service unreachable?); retrying with GOSUMDB=off"
                build GOSUMDB=off || problems=1
            else
                problems=1
            fi
        fi
        rm -f "$build_log"
        if [ -x "$INFLUXD_DIR/influxd" ]; then
            say "influxd built in $((SECONDS - step_start))s: $INFLUXD_DIR/influxd"
        else
            say "FAILED to build influxd $INFLUXD_VERSION; see the go output above"
            problems=1
        fi
    fi
fi

say "done in $((SECONDS - script_start))s"
if [ "$problems" -ne 0 ]; then
    if in_ci; then
        say "CI=true: a missing peer is a failure"
        exit 1
    fi
    say "continuing: tests that need a missing peer will be skipped (make services to retry)"
fi
