"""The reference for bench/train_throughput.cpp: the same model and training
step written in PyTorch eager mode (Debian's python3-torch), timed the same
way (rate between a short and a long run). Prints one JSON line.

The data are random tensors of the real shapes: the values do not change the
work of a step. Run with Debian's interpreter: /usr/bin/python3.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ELU())


def up(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                         nn.BatchNorm2d(cout), nn.ELU())


class CaeFr(nn.Module):
    """CAE with a factorised readout on h_layer, as models/network.cpp."""

    def __init__(self, neurons, layer, width=32, latent=100):
        super().__init__()
        self.layer = layer
        self.enc = nn.ModuleList([block(1 if i == 0 else width << (i - 1), width << i) for i in range(4)])
        self.to_latent = nn.Linear(8 * width * 4, latent)
        self.from_latent = nn.Linear(latent, 8 * width * 4)
        ch = [8 * width, 4 * width, 2 * width, width, width]
        self.dec = nn.Sequential(*[up(ch[i], ch[i + 1]) for i in range(4)])
        self.out = nn.Conv2d(width, 1, 3, 1, 1)
        c, side = width << (layer - 1), 32 >> layer
        self.spatial = nn.Parameter(torch.randn(neurons, side * side) * 0.01)
        self.features = nn.Parameter(torch.randn(neurons, c) * 0.01)
        self.bias = nn.Parameter(torch.zeros(neurons))
        self.width = width

    def forward(self, x):
        hs = []
        for b in self.enc:
            x = b(x)
            hs.append(x)
        h = hs[self.layer - 1]
        pooled = torch.matmul(h.flatten(2), self.spatial.abs().t())
        pred = F.softplus((pooled * self.features.abs().t().unsqueeze(0)).sum(1) + self.bias)
        z = self.to_latent(hs[3].flatten(1))
        y = self.from_latent(z).view(-1, 8 * self.width, 2, 2)
        rec = torch.tanh(self.out(self.dec(y)))
        reg = 0.03 * (self.spatial.abs().sum(1) * self.features.abs().sum(1)).sum()
        return rec, pred, reg


def timed(model_args, x, s, batch, steps):
    torch.manual_seed(0)
    model = CaeFr(*model_args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0]
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n, (batch,))
        xb, sb = x[idx], s[idx]
        opt.zero_grad()
        rec, pred, reg = model(xb)
        loss = F.mse_loss(rec, xb) + (pred - sb * torch.log(pred + 1e-5)).sum(1).mean() + reg
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--neurons", type=int, default=102)
    ap.add_argument("--images", type=int, default=1440)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.rand(a.images, 1, 32, 32) * 2 - 1
    s = torch.poisson(torch.rand(a.images, a.neurons))
    args = (a.neurons, a.layer)
    timed(args, x, s, a.batch, 3)
    short = max(1, a.steps // 4)
    t_short = timed(args, x, s, a.batch, short)
    t_long = timed(args, x, s, a.batch, a.steps)
    print(json.dumps({"impl": "pytorch", "model": f"cae-fr_{a.layer}", "batch": a.batch,
                      "threads": a.threads, "torch": torch.__version__,
                      "samples_per_s": (a.steps - short) * a.batch / (t_long - t_short)}))


if __name__ == "__main__":
    main()
