#!/bin/sh
# Builds ppl (if needed) and runs the whole test suite with ctest: the Check
# unit tests, the golden diagnostics, the examples and the embedding host.
# Usage: scripts/test.sh [BUILD_DIR] [extra cmake options...]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift
cmake -S . -B "$BUILD" "$@" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j 2
