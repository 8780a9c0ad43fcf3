#!/usr/bin/env bash
# The project's test command: set-up, formatting, lints, the guest components check, all tests,
# then a bounded fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== rustfmt"
cargo fmt --all --check
(cd guest-processors && cargo fmt --all --check)
echo "== guest components (rebuilt from source, compared with the committed ones)"
cargo xtask check-guests
echo "== Python and JavaScript guests (built from source; the tests load them)"
cargo xtask build-py-js-guests
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
echo "== fuzz (each target for FUZZ_SECONDS, default 20)"
# Without a sanitizer: the targets are safe Rust, and the instrumented build takes minutes less.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" bash scripts/fuzz.sh
