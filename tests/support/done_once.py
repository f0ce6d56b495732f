"""Every job of a sweep database done exactly once, for the command-line tests.

Usage: python3 done_once.py DB JOBS [MAX_STEPS]

Checks: every job done; one result each; no job beyond its first attempt (a
preempted run does not count as one); no lease left behind; no checkpoint
left in DB.checkpoints (a finished job's is spent); results within MAX_STEPS
steps; the file whole. Exits non-zero with the first failed check.
"""
import os
import sqlite3
import sys

path, n = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
assert states == {"done": n}, states
assert db.execute("SELECT count(*), count(DISTINCT job_id) FROM results").fetchone() == (n, n)
assert db.execute("SELECT max(attempts) FROM jobs").fetchone()[0] == 1
left = db.execute("SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL").fetchone()[0]
assert left == 0, f"{left} leases left behind"
checkpoints = path + ".checkpoints"
assert not os.path.isdir(checkpoints) or os.listdir(checkpoints) == [], os.listdir(checkpoints)
if len(sys.argv) > 3:
    assert db.execute("SELECT max(steps) FROM results").fetchone()[0] <= int(sys.argv[3])
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
