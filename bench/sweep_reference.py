"""The PyTorch side of bench/sweep_vs_pytorch.sh: trains a list of jobs one after the other in
one process, each with the schedule its daenr twin ran (the same model, batch size, learning
rate, number of steps and validation cadence; the best validated parameters kept and restored;
a final evaluation of the test images), on a region written by `daenr data synth`. The data
are prepared simply (31 -> 32 pixels bilinear, images scaled to (-1, 1), the last val_fraction of
the training images for validation): the values do not change the work. Prints one JSON line.
  /usr/bin/python3 bench/sweep_reference.py --region DIR --jobs JOBS.json --threads N
"""
import argparse
import copy
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from train_throughput import DaeNr


def load(region, val_fraction):
    def images(name):
        x = torch.from_numpy(np.load(f"{region}/{name}").astype(np.float32)).view(-1, 1, 31, 31)
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        lo, hi = x.min(), x.max()
        return (x - lo) / (hi - lo) * 2 - 1
    x = images("training_inputs.npy")
    s = torch.from_numpy(np.load(f"{region}/training_set.npy").astype(np.float32))
    n_val = int(x.shape[0] * val_fraction)
    return (x[:-n_val], s[:-n_val]), (x[-n_val:], s[-n_val:]), images("validation_inputs.npy")


def losses(model, job, xb, sb):
    rec, pred, reg, extra = model(xb)
    total = torch.zeros(())
    if pred is not None:
        total = total + job["beta"] * ((pred - sb * torch.log(pred + 1e-5)).sum(1).mean() + reg)
    if rec is not None and job["alpha"] > 0:
        total = total + job["alpha"] * 1024 * (F.mse_loss(rec, xb) + extra)
    return total


def run_job(job, train, val, test):
    torch.manual_seed(job["seed"])
    (x, s), (vx, vs) = train, val
    model = DaeNr(s.shape[1], job["layer"], job["autoencoder"], width=job["width"],
                  readout=job["readout"] != "none")
    opt = torch.optim.Adam(model.parameters(), lr=job["lr"])
    best, best_val = None, float("inf")
    for step in range(1, job["steps"] + 1):
        idx = torch.randint(0, x.shape[0], (job["batch"],))
        opt.zero_grad()
        losses(model, job, x[idx], s[idx]).backward()
        opt.step()
        if step % job["validate_every"] == 0 or step == job["steps"]:
            model.eval()
            with torch.no_grad():
                v = float(losses(model, job, vx, vs))
            model.train()
            if v < best_val:
                best_val, best = v, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        model(test)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--region", required=True)
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    jobs = json.load(open(a.jobs))
    train, val, test = load(a.region, jobs[0]["val_fraction"])
    for job in jobs:
        run_job(job, train, val, test)
    print(json.dumps({"impl": "pytorch", "jobs": len(jobs), "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
