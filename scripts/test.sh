#!/usr/bin/env bash
# Builds ferry and runs the whole test suite: a normal build, a Release build,
# a minute of fuzzing the plan reader, then the suite again in an ASan + UBSan
# build.
# FERRY_SKIP_FUZZ=1 and FERRY_SKIP_SANITIZE=1 skip those parts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
py="$PWD/.venv/bin/python"

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_PYTHON="$py" >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

# Release (-O3) must build under -Werror too: GCC's flow warnings differ by level.
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DFERRY_PYTHON="$py" >/dev/null
cmake --build build-release -j"$jobs"
(cd build-release && ctest --output-on-failure -j"$jobs" --timeout 900)

# The plan reader under libFuzzer + ASan for about a minute (fails on any crash).
if [ "${FERRY_SKIP_FUZZ:-0}" != 1 ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-60}" bash scripts/fuzz.sh
fi

if [ "${FERRY_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON -DFERRY_PYTHON="$py" >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs" --timeout 1800 -LE slow)
fi
