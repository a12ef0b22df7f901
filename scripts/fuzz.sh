#!/usr/bin/env bash
# Fuzzes the plan reader (tests/fuzz/fuzz_plan.c) with libFuzzer under
# AddressSanitizer and UndefinedBehaviorSanitizer for FUZZ_SECONDS (default
# 60), starting from the seed plans in tests/fuzz/corpus. Fails on any crash,
# sanitizer report, leak or timeout; the input that caused it is left in
# build-fuzz/artifacts/. Builds with clang directly (no CMake): the ferry
# sources the reader needs, compiled into build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
out=build-fuzz
mkdir -p "$out/obj" "$out/corpus" "$out/artifacts"
cc="${FUZZ_CC:-clang}"
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (apt-get install clang libclang-rt-14-dev)"; exit 1; }

flags=(-std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -I.
  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
# The reader rebuilds a graph (ir/) and a schedule (schedules/) and checks
# them with code from passes/; linked from an archive, only what the reader
# reaches is pulled in.
sources=(support/*.c ir/*.c passes/*.c schedules/*.c)
objects=()
pids=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(echo "${src%.c}" | tr / _).o"
  objects+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find include support ir passes schedules -name '*.h' -newer "$obj" -print -quit)" ]; then
    echo "fuzz: cc $src"
    "$cc" "${flags[@]}" -c "$src" -o "$obj" || { rm -f "$obj"; exit 1; } &
    pids+=($!)
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
rm -f "$out/libferry_fuzz.a"
ar rcs "$out/libferry_fuzz.a" "${objects[@]}"
"$cc" "${flags[@]}" -fsanitize=fuzzer tests/fuzz/fuzz_plan.c "$out/libferry_fuzz.a" \
  $(pkg-config --libs libcjson libxxhash) -lm -lpthread -ldl -o "$out/fuzz_plan"

echo "fuzz: running fuzz_plan for ${seconds}s"
"$out/fuzz_plan" "$out/corpus" tests/fuzz/corpus \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=262144 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1
echo "fuzz: no crash in ${seconds}s"
