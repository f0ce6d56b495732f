"""Sums a Chrome trace written by `daenr_bench_train --profile FILE` (LibTorch's
legacy profiler) per operator: self time (the operator's span minus the spans of
the operators it called), calls, and share of all self time. Prints a Markdown
table of the top rows.
  python3 bench/profile_summary.py FILE [rows]
"""
import collections
import json
import sys


def self_times(events):
    """Self time per name. Events on one thread nest (a parent's span contains its
    children's), so walking them by start time with a stack gives each event's
    children."""
    by_tid = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_tid[e["tid"]].append(e)
    total = collections.Counter()
    calls = collections.Counter()
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child time]
        def close(entry):
            end, name, child, dur = entry
            total[name] += dur - child
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                close(stack.pop())
            if stack:
                stack[-1][2] += e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], 0.0, e["dur"]])
            calls[e["name"]] += 1
        while stack:
            close(stack.pop())
    return total, calls


def main():
    events = json.load(open(sys.argv[1]))
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    total, calls = self_times(events)
    all_us = sum(total.values())
    print(f"| operator | self ms | calls | share |\n|---|---|---|---|")
    for name, us in total.most_common(rows):
        print(f"| {name} | {us / 1000:.1f} | {calls[name]} | {100 * us / all_us:.1f}% |")
    print(f"| (all) | {all_us / 1000:.1f} | | |")


if __name__ == "__main__":
    main()
