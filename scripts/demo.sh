#!/usr/bin/env bash
# The main job on the bundled default: synthesize the `small` model (~250 MB
# of bf16 weights), compile a plan for the `demo` GPU profile (150 MiB of
# VRAM: about half the layers' bytes must stream), inspect it, replay it on
# the cpu backend with evicted memory poisoned and the bus emulated at the
# profile's rate, check it bit for bit against the reference, and report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build build -j"$(nproc)" --target ferry >/dev/null
out=build/demo
mkdir -p "$out"
ferry=./build/ferry

echo "== synthesize: small preset, seed 1"
[ -f "$out/small/config.json" ] || $ferry synth --preset small -o "$out/small" --seed 1
echo "== compile for the demo target"
$ferry compile "$out/small" --target demo --prompt-len 16 --generate 16 -o "$out/small.plan" | tail -n 8
echo "== inspect"
$ferry inspect "$out/small.plan" --svg "$out/small.svg" --trace "$out/predicted.json"
echo "== run: cpu backend, poisoned, bus emulated at 2 GB/s, checked against the reference"
$ferry run "$out/small.plan" --prompt 1,2,3,4,5,6,7,8 --generate 16 --poison --emulate-h2d 2 \
  --check-reference --compare-predicted --trace "$out/measured.json"
echo "== report: plan $out/small.plan, timeline picture $out/small.svg,"
echo "   predicted and measured traces $out/predicted.json $out/measured.json (open in Perfetto)"
