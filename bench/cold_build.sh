#!/usr/bin/env bash
# Cold-build time of two revisions, side by side: each round builds BASE then NEW from nothing
# (fresh worktree, fresh build folder, the same CMake settings as scripts/build.sh) and prints
# the wall seconds of each and NEW/BASE. Alternating the two keeps the ratio meaningful on a
# machine whose speed drifts.
#
#   bench/cold_build.sh BASE_REV [NEW_REV=HEAD] [ROUNDS=1] [TARGET]
#
# TARGET empty builds everything (scripts/build.sh, scripts/test.sh); TARGET=daenr builds what
# scripts/main.sh builds (the executable alone). Takes 5-25 minutes a round on 2 cores.
# DAENR_KEEP_BUILDS=DIR keeps the last round's two builds as DIR/base-build and DIR/new-build
# (to run benchmarks of both revisions side by side afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/cold_build.sh BASE_REV [NEW_REV] [ROUNDS] [TARGET]}
new=${2:-HEAD} rounds=${3:-1} target=${4:-}
tmp=$(mktemp -d)
cleanup() {
  git worktree remove --force "$tmp/base" 2>/dev/null || true
  git worktree remove --force "$tmp/new" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add -q --detach "$tmp/base" "$base"
git worktree add -q --detach "$tmp/new" "$new"

build() {  # prints the wall seconds of one cold build of worktree $1
  local src=$1 dir=$1-build start end
  rm -rf "$dir"
  start=$(date +%s.%N)
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$dir" ${target:+--target "$target"} >/dev/null
  end=$(date +%s.%N)
  if [ -n "${DAENR_KEEP_BUILDS:-}" ]; then
    mkdir -p "$DAENR_KEEP_BUILDS"
    rm -rf "$DAENR_KEEP_BUILDS/$(basename "$dir")"
    mv "$dir" "$DAENR_KEEP_BUILDS/"
  else
    rm -rf "$dir"
  fi
  awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
echo "base $(git rev-parse --short "$base"), new $(git rev-parse --short "$new"), target ${target:-all}"
for ((i = 1; i <= rounds; i++)); do
  b=$(build "$tmp/base")
  n=$(build "$tmp/new")
  awk -v i="$i" -v b="$b" -v n="$n" \
    'BEGIN { printf "round %d: base %.0f s, new %.0f s, new/base %.2f\n", i, b, n, n / b }'
done
