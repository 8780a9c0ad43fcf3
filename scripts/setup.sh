#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine of this kind (Debian 12, rustup stable).
# Idempotent: skips what is already there.
set -euo pipefail

need_apt=()
# Guest builds: Debian's newer Rust with the std source and its linker (see docs/guests.md);
# OpenSSL headers for the HTTPS client.
for pkg in rustc-web cargo-web rust-web-src lld-22 pkg-config libssl-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The official Python SDK, used by the compatibility tests and the Python-SDK benchmark.
python3 -c 'import tablestore' 2>/dev/null || {
  echo "setup: installing the official Python SDK (tablestore)"
  python3 -m pip install --quiet 'tablestore==6.4.8'
}

# Rust components used by the checks.
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

# cargo-fuzz, for the bounded fuzzing run of the tests (scripts/fuzz.sh).
cargo fuzz --version >/dev/null 2>&1 || {
  echo "setup: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
}
