#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds (default 30) each, one after
# the other, and prints how many inputs each one ran. Exits non-zero on the first crash (the
# input is left in fuzz/artifacts/<target>/) or when a target does not build.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a compiler that accepts -Z flags: a nightly
# toolchain, or stable with RUSTC_BOOTSTRAP=1, which this script sets when needed. Without
# them it says what is missing and exits 1, or 0 with FUZZ_ALLOW_MISSING=1.
# FUZZ_SANITIZER (default `address`) is passed to cargo fuzz; `none` works where the compiler
# has no sanitizer runtime.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"

missing() {
  echo "fuzz: $1; no fuzzing done" >&2
  if [ "${FUZZ_ALLOW_MISSING:-0}" = 1 ]; then exit 0; fi
  exit 1
}

cargo fuzz --version >/dev/null 2>&1 ||
  missing "cargo-fuzz is not installed (install it with: cargo install cargo-fuzz)"
if ! rustc -Z unstable-options --version >/dev/null 2>&1; then
  export RUSTC_BOOTSTRAP=1
  rustc -Z unstable-options --version >/dev/null 2>&1 ||
    missing "$(rustc --version) rejects -Z flags even with RUSTC_BOOTSTRAP=1 (install a nightly toolchain)"
fi

targets=$(cargo fuzz list)
echo "fuzz: $(rustc --version)${RUSTC_BOOTSTRAP:+ with RUSTC_BOOTSTRAP=1}, sanitizer $sanitizer, ${seconds}s per target"
echo "fuzz: building $(echo "$targets" | tr "\n" " ")"
cargo fuzz build --sanitizer "$sanitizer"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for target in $targets; do
  mkdir -p "corpus/$target"
  log="$logs/$target.log"
  started=$(date +%s)
  # TMPDIR: what a target puts in the temporary directory goes with the logs.
  if ! TMPDIR="$logs" cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED; the crashing input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  echo "fuzz: $target ok: ${runs:-?} runs in $(($(date +%s) - started))s, corpus $(ls "corpus/$target" | wc -l) inputs"
done
