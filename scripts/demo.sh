#!/usr/bin/env bash
# The gateway's main job on one machine, no Dify needed: the bundled Dify simulator on 127.0.0.1:5001,
# the gateway on 127.0.0.1:8080 (admin on :9090) with config/gateway.toml, and a curl line to paste.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --quiet --bin dify-gateway -- demo "$@"
