#!/usr/bin/env bash
# The main job on the bundled default: synthesize the tiny model and generate
# tokens from it with the CPU reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build build -j"$(nproc)" --target ferry
out=build/demo
./build/ferry synth --preset tiny -o "$out/tiny" --seed 1
./build/ferry graph "$out/tiny"
./build/ferry run "$out/tiny" --prompt 1,2,3 --generate 8
