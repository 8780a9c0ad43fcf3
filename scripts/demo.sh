#!/usr/bin/env bash
# Runs the demo: a local Tablestore-compatible server, a source table under write load,
# replication through the tunnel with the default and example guests, and a verify.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
cargo run --release --locked -p ots-cli --bin otsrep -- demo "$@"
