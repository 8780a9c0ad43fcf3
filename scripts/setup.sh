#!/usr/bin/env bash
# Installs what the project needs on a fresh machine of this kind (Debian 12, rustup stable).
# Idempotent: skips what is already there.
#
#   bash scripts/setup.sh          everything the tests need (what `scripts/test.sh` runs)
#   bash scripts/setup.sh --demo   only what building and running the demo needs
set -euo pipefail
cd "$(dirname "$0")/.."

demo_only=0
case "${1:-}" in
  --demo) demo_only=1 ;;
  "") ;;
  *) echo "setup: unknown option $1 (expected --demo or nothing)" >&2; exit 2 ;;
esac

# The host binaries: OpenSSL headers for the HTTPS client. The demo runs the committed guest
# components, so it needs nothing more.
apt_packages=(pkg-config libssl-dev)
if [ "$demo_only" = 0 ]; then
  # Guest builds (the components check): Debian's newer Rust with the std source and its
  # linker (see docs/guests.md).
  apt_packages+=(rustc-web cargo-web rust-web-src lld-22)
fi
need_apt=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ "$demo_only" = 1 ] && exit 0

# The official Python SDK, used by the compatibility tests and the Python-SDK benchmark.
python3 -c 'import tablestore' 2>/dev/null || {
  echo "setup: installing the official Python SDK (tablestore)"
  python3 -m pip install --quiet 'tablestore==6.4.8'
}

# An S3-compatible server (moto) for the backup store's S3 test.
python3 -c 'import moto.server, boto3' 2>/dev/null || {
  echo "setup: installing moto (an S3-compatible server, for the backup tests)"
  python3 -m pip install --quiet 'moto[server]==5.2.1'
}

# The official Node SDK, pinned by the lock file, for the conformance tests of the local server.
[ -d host/local-server/tests/node/node_modules/tablestore ] || {
  echo "setup: installing the official Node SDK (tablestore, npm)"
  (cd host/local-server/tests/node && npm ci --silent --no-audit --no-fund)
}

# The tools that build the Python and JavaScript guests (`cargo xtask build-py-js-guests`):
# componentize-py from PyPI, componentize-js from npm, pinned by its lock file.
command -v componentize-py >/dev/null && componentize-py --version 2>/dev/null | grep -q ' 0\.25\.1' || {
  echo "setup: installing componentize-py (builds the Python guests)"
  python3 -m pip install --quiet 'componentize-py==0.25.1'
}
[ -x guest-processors/js/node_modules/.bin/componentize-js ] || {
  echo "setup: installing componentize-js (npm, builds the JavaScript guests)"
  (cd guest-processors/js && npm ci --silent --no-audit --no-fund)
}

# Rust components used by the checks.
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

# cargo-fuzz, for the bounded fuzzing run of the tests (scripts/fuzz.sh).
cargo fuzz --version >/dev/null 2>&1 || {
  echo "setup: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
}
