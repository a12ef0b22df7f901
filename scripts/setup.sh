#!/usr/bin/env bash
# Installs what ferry needs on a fresh Debian 12 machine (idempotent):
# the C toolchain and libraries from Debian, and a Python venv (.venv) with
# the test oracles from PyPI (numpy, onnx, onnxruntime).
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(build-essential cmake pkg-config clang libclang-rt-14-dev python3-venv
  libcjson-dev libxxhash-dev flatbuffers-compiler libflatbuffers-dev spirv-tools
  libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import numpy, onnx, onnxruntime" 2>/dev/null; then
  echo "setup: creating .venv with numpy, onnx, onnxruntime"
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check numpy onnx onnxruntime
fi
