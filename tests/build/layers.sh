#!/usr/bin/env bash
# The layer check (cmake/check_layers.cmake): a lower folder that includes a higher one fails
# with file:line and the include named; the real tree, under the real rules, passes.
# Usage: layers.sh CMAKE SOURCE_DIR RULES
set -euo pipefail
cmake_bin=$1 root=$2 rules=$3
script="$root/cmake/check_layers.cmake"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/low" "$tmp/high"
printf '#pragma once\n' > "$tmp/high/b.h"
printf '#pragma once\n// a comment\n#include "low/a.h"\n' > "$tmp/high/c.h"
printf '#pragma once\n#include <vector>\n  #include "high/b.h"\n' > "$tmp/low/a.h"

# Allowed direction: high builds on low. The offence is low/a.h line 3.
if out=$("$cmake_bin" -DROOT="$tmp" "-DRULES=low:|high:low" -P "$script" 2>&1); then
  echo "FAIL: a lower folder including a higher one passed the check"; exit 1
fi
grep -q 'low/a.h:3: error: includes "high/b.h", but low/ may include only low' <<<"$out" ||
  { echo "FAIL: unexpected message: $out"; exit 1; }
# The other direction is fine.
rm "$tmp/low/a.h"
"$cmake_bin" -DROOT="$tmp" "-DRULES=low:|high:low" -P "$script" ||
  { echo "FAIL: an allowed include was refused"; exit 1; }
# The tree itself.
"$cmake_bin" -DROOT="$root" "-DRULES=$rules" -P "$script" ||
  { echo "FAIL: the source tree breaks its own layers"; exit 1; }
echo "ok"
