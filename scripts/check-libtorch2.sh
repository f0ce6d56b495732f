#!/usr/bin/env bash
# Checks that every source file compiles against a LibTorch 2.x without a GPU
# machine: downloads Debian trixie's libtorch-dev (2.6) headers into a folder
# of its own (no system change), then compiles each entry of
# build/compile_commands.json with those headers first on the include path,
# -fsyntax-only (no link: trixie's libraries would need trixie's C++ runtime).
# Needs network access to deb.debian.org and a configured build/ (scripts/build.sh).
#   scripts/check-libtorch2.sh [WORK_DIR]     # default: /tmp/daenr-libtorch2
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/daenr-libtorch2}
mkdir -p "$work/etc" "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/prefix"
echo "deb http://deb.debian.org/debian trixie main" >"$work/etc/sources.list"
apt=(-o "Dir::Etc::sourcelist=$work/etc/sources.list" -o Dir::Etc::sourceparts=/dev/null
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
if [ ! -d "$work/prefix/usr/include/torch" ]; then
  apt-get "${apt[@]}" update -qq
  (cd "$work/debs" && apt-get "${apt[@]}" download libtorch-dev 2>/dev/null)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/prefix"; done
fi
python3 - "$work/prefix/usr/include" "$PWD" <<'PY'
import json, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
include, root = sys.argv[1], sys.argv[2]
first = ["-I" + include, "-I" + include + "/torch/csrc/api/include"]
jobs = []
for entry in json.load(open(root + "/build/compile_commands.json")):
    if "cmake_pch" in entry["file"]:
        continue
    args, out, skip = shlex.split(entry["command"]), [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "-include", "-MT", "-MF"):
            skip = True  # the output, and the precompiled header built from 1.13
        elif a != "-MD" and "cmake_pch" not in a:
            out.append(a)
    jobs.append((entry["file"], [out[0]] + first + out[1:] + ["-fsyntax-only", "-w"], entry["directory"]))
probe = subprocess.run(["c++"] + first + ["-std=c++20", "-x", "c++", "-E", "-dM", "-"], input="#include <torch/version.h>\n",
                       capture_output=True, text=True)
version = [l for l in probe.stdout.splitlines() if "TORCH_VERSION " in l]
print("LibTorch headers:", version[0].split()[-1] if version else "unknown")
failed = 0
with ThreadPoolExecutor(2) as pool:
    for (name, _, _), r in zip(jobs, pool.map(lambda j: subprocess.run(j[1], cwd=j[2], capture_output=True, text=True), jobs)):
        print(("ok   " if r.returncode == 0 else "FAIL ") + name, flush=True)
        if r.returncode:
            failed += 1
            print(r.stderr[:4000])
print(f"{len(jobs)} files, {failed} failed")
sys.exit(1 if failed else 0)
PY
