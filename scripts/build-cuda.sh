#!/usr/bin/env bash
# Builds daenr against a CUDA LibTorch into build-cuda/ (see docs/gpu.md).
# By default the LibTorch is the one bundled with the CUDA PyTorch of
# `python3`; set TORCH_CMAKE_PREFIX to use another. Extra CMake prefixes (for
# fmt, toml++, CLI11, ... unpacked outside /usr) go in DAENR_DEPS_PREFIX.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_prefix=${TORCH_CMAKE_PREFIX:-$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')}
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null && [ -z "${TORCH_CMAKE_PREFIX:-}" ]; then
  echo "build-cuda.sh: $python's PyTorch has no CUDA; set TORCH_CMAKE_PREFIX to a CUDA LibTorch" >&2
  exit 2
fi
prefixes="$torch_prefix${DAENR_DEPS_PREFIX:+;$DAENR_DEPS_PREFIX}"
build_dir=${DAENR_BUILD_DIR:-build-cuda}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefixes" \
  ${DAENR_DEPS_PREFIX:+-DCMAKE_CXX_FLAGS="-isystem $DAENR_DEPS_PREFIX/include"} "$@"
cmake --build "$build_dir"
