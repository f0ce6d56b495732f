"""The reference for bench/train_throughput.cpp: the same model and training
step written in PyTorch eager mode (Debian's python3-torch), timed the same
way (rate between a short and a long run). Prints one JSON line.

The data are random tensors of the real shapes: the values do not change the
work of a step. Run with Debian's interpreter: /usr/bin/python3.
"""
import argparse
import ctypes
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ELU())


def up(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                         nn.BatchNorm2d(cout), nn.ELU())


class DaeNr(nn.Module):
    """An autoencoder (cae, vae, vqvae or none) with a factorised readout on h_layer, as
    models/network.cpp: without a decoder the encoder stops at h_layer."""

    def __init__(self, neurons, layer, autoencoder="cae", width=32, latent=100, codes=32,
                 readout=True):
        super().__init__()
        self.layer, self.kind, self.width, self.readout = layer, autoencoder, width, readout
        depth = layer if autoencoder == "none" else 4
        self.enc = nn.ModuleList([block(1 if i == 0 else width << (i - 1), width << i) for i in range(depth)])
        h4 = 8 * width * 4
        if autoencoder in ("cae", "vae"):
            self.to_latent = nn.Linear(h4, latent)
            if autoencoder == "vae":
                self.to_logvar = nn.Linear(h4, latent)
            self.from_latent = nn.Linear(latent, h4)
        if autoencoder == "vqvae":
            self.codebook = nn.Parameter(torch.empty(codes, 8 * width).uniform_(-1 / codes, 1 / codes))
        if autoencoder != "none":
            ch = [8 * width, 4 * width, 2 * width, width, width]
            self.dec = nn.Sequential(*[up(ch[i], ch[i + 1]) for i in range(4)])
            self.out = nn.Conv2d(width, 1, 3, 1, 1)
        c, side = width << (layer - 1), 32 >> layer
        self.spatial = nn.Parameter(torch.randn(neurons, side * side) * 0.01)
        self.features = nn.Parameter(torch.randn(neurons, c) * 0.01)
        self.bias = nn.Parameter(torch.zeros(neurons))

    def forward(self, x):
        hs = []
        for b in self.enc:
            x = b(x)
            hs.append(x)
        pred, reg = None, torch.zeros(())
        if self.readout:
            h = hs[self.layer - 1]
            pooled = torch.matmul(h.flatten(2), self.spatial.abs().t())
            pred = F.softplus((pooled * self.features.abs().t().unsqueeze(0)).sum(1) + self.bias)
            reg = 0.03 * (self.spatial.abs().sum(1) * self.features.abs().sum(1)).sum()
        extra = torch.zeros(())
        if self.kind == "none":
            return None, pred, reg, extra
        h4 = hs[3]
        if self.kind == "cae":
            y = self.from_latent(self.to_latent(h4.flatten(1)))
        elif self.kind == "vae":
            mu, logvar = self.to_latent(h4.flatten(1)), self.to_logvar(h4.flatten(1))
            extra = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean() / 1024
            y = self.from_latent(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar))
        else:  # vqvae: nearest code per position, straight-through
            b, d = h4.shape[0], h4.shape[1]
            flat = h4.permute(0, 2, 3, 1).reshape(-1, d)
            dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)
            e = self.codebook[dist.argmin(1)]
            extra = F.mse_loss(e, flat.detach()) + 0.25 * F.mse_loss(flat, e.detach())
            y = (flat + (e - flat).detach()).reshape(b, 2, 2, d).permute(0, 3, 1, 2)
        rec = torch.tanh(self.out(self.dec(y.reshape(-1, 8 * self.width, 2, 2))))
        return rec, pred, reg, extra


def training_mflop_per_sample(model_args):
    """Multiply-adds of one forward pass per image (convolutions, transposed convolutions,
    linear maps and the readout's products), x 2 FLOP, x 3 for forward + the two gradients."""
    model = DaeNr(*model_args)
    macs = []

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Conv2d):
            macs.append(out[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.ConvTranspose2d):
            macs.append(x[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            macs.append(m.in_features * m.out_features)
    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 1, 32, 32))
    neurons, side2 = model.spatial.shape
    readout = neurons * side2 * model.features.shape[1]
    return 2 * 3 * (sum(macs) + readout) / 1e6


def openblas_threads(n):
    """Sets OpenBLAS's threads where it is the BLAS (the training runs keep it to one; the
    ceiling is for all the run's threads). Loading the same soname gives the loaded library."""
    for name in ("libblas.so.3", "libopenblas.so.0"):  # Debian's alternative, or OpenBLAS's own
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            return
        except (OSError, AttributeError):
            continue


def sgemm_gflops(threads):
    """A practical ceiling for these cores right now: a 2048 x 2048 single-precision product
    through the same BLAS on `threads` threads, the best of 3. Taken in every run, so that it
    sees the machine as the rates beside it do (a shared VM's speed drifts by 1.5x within an
    hour)."""
    openblas_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    openblas_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", threads)))
    return 2 * 2048 ** 3 / best / 1e9


def timed(model_args, x, s, batch, steps):
    torch.manual_seed(0)
    model = DaeNr(*model_args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        idx = torch.randint(0, n, (batch,))
        xb, sb = x[idx], s[idx]
        opt.zero_grad()
        rec, pred, reg, extra = model(xb)
        # The paper's loss: the squared error summed over an image's 1024 pixels.
        loss = (pred - sb * torch.log(pred + 1e-5)).sum(1).mean() + reg
        if rec is not None:
            loss = loss + 1024 * (F.mse_loss(rec, xb) + extra)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--autoencoder", default="cae", choices=["cae", "vae", "vqvae", "none"])
    ap.add_argument("--neurons", type=int, default=102)
    ap.add_argument("--images", type=int, default=1440)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.rand(a.images, 1, 32, 32) * 2 - 1
    s = torch.poisson(torch.rand(a.images, a.neurons))
    args = (a.neurons, a.layer, a.autoencoder)
    timed(args, x, s, a.batch, 3)
    short = max(1, a.steps // 4)
    t_short = timed(args, x, s, a.batch, short)
    t_long = timed(args, x, s, a.batch, a.steps)
    print(json.dumps({"impl": "pytorch", "model": f"{a.autoencoder}-fr_{a.layer}", "batch": a.batch,
                      "threads": a.threads, "torch": torch.__version__,
                      "samples_per_s": (a.steps - short) * a.batch / (t_long[0] - t_short[0]),
                      "samples_per_cpu_s": (a.steps - short) * a.batch / (t_long[1] - t_short[1]),
                      "mflop_per_sample": training_mflop_per_sample(args),
                      "sgemm_gflops": sgemm_gflops(a.threads)}))


if __name__ == "__main__":
    main()
