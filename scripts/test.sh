#!/usr/bin/env bash
# Builds ferry and runs the whole test suite twice: a normal build, then an
# ASan + UBSan build. Set FERRY_SKIP_SANITIZE=1 to run only the first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
py="$PWD/.venv/bin/python"

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_PYTHON="$py" >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

if [ "${FERRY_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON -DFERRY_PYTHON="$py" >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs" --timeout 1800 -LE slow)
fi
