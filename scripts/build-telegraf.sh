#!/usr/bin/env bash
# Build Telegraf (the benchmark's peer) from its Go module, with only the plugins the benchmarks
# run (modbus and mqtt_consumer inputs, the json parser, influxdb_v2 output), and cache it under
# ~/.cache/emgate/ by version and plugin set.
# The checksum database answers 404 for one of Telegraf's dependencies from here (seen with
# v1.32.3: github.com/influxdata/tail), so the build turns the checksum-database lookup off.
set -euo pipefail
VERSION="${TELEGRAF_VERSION:-1.32.3}"
DEST="${HOME}/.cache/emgate/telegraf-${VERSION}-modbus-mqtt"
if [ -x "${DEST}/telegraf" ]; then
    echo "telegraf ${VERSION}: cached at ${DEST}/telegraf"
    exit 0
fi
command -v go >/dev/null || { echo "go is not installed; make services installs it" >&2; exit 1; }
mkdir -p "${DEST}"
start=$(date +%s)
GOBIN="${DEST}" CGO_ENABLED=0 GOSUMDB=off go install -trimpath -ldflags='-s -w' \
    -tags "custom,inputs.modbus,inputs.mqtt_consumer,parsers.json,outputs.influxdb_v2" "github.com/influxdata/telegraf/cmd/telegraf@v${VERSION}"
echo "telegraf ${VERSION}: built in $(( $(date +%s) - start )) s at ${DEST}/telegraf"
