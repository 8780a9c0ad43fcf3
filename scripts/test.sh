#!/usr/bin/env bash
# The project's test command: set-up, formatting, lints, the guest components check, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== rustfmt"
cargo fmt --all --check
(cd guest-processors && cargo fmt --all --check)
echo "== guest components (rebuilt from source, compared with the committed ones)"
cargo xtask check-guests
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
