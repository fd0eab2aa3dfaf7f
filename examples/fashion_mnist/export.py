#!/usr/bin/env python3
"""Python interop for examples/fashion_mnist (needs python3-torch, the same
LibTorch version as the C++ build).

The U-Net below mirrors unet.hpp module for module (same names, same
operations), so the two share checkpoints:

  export.py check CHECKPOINT_DIR FORWARD_FILE
      Loads the C++ checkpoint's EMA weights (CHECKPOINT_DIR/ema.pt, written by
      torch::save) into the Python U-Net, runs it on the input stored in
      FORWARD_FILE (written by `fashion_mnist --forward-check FILE`) and
      compares with the C++ output stored there. Exits 1 unless they agree to
      float32 rounding. A class-conditional checkpoint (state.txt: classes 1)
      is checked with the labels stored in FORWARD_FILE.

  export.py torchscript CHECKPOINT_DIR OUT.pt
      The same weights as a TorchScript module forward(x, t) -> eps (a
      conditional checkpoint: forward(x, t, labels=None), labels 0..9 or 10 =
      none; no labels = the null label), which
      `fashion_mnist --torchscript OUT.pt` samples (or any C++ program through
      ddpm::torch_denoiser).

  export.py train OUT.pt [--iters N] [--channels C] [--data DIR]
      Trains the U-Net in Python (Algorithm 1, L_simple, a few iterations by
      default) and exports it as TorchScript: the Python-trained module that
      the C++ example then samples.
"""
import argparse
import gzip
import math
import os
import sys
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(c), dim=-1)
        return x + self.proj(torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w))


NULL_LABEL = 10  # "no label": the unconditional model of classifier-free guidance


class UNet(nn.Module):
    def __init__(self, channels: int = 16, groups: int = 8, attention: bool = True, classes: bool = False):
        super().__init__()
        c, g, temb = channels, groups, 4 * channels
        self.channels = c
        self.classes = classes
        self.null_label = NULL_LABEL
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.time1 = nn.Linear(c, temb)
        self.time2 = nn.Linear(temb, temb)
        self.enc1 = ResBlock(c, c, temb, g)
        self.down1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.enc2 = ResBlock(c, 2 * c, temb, g)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.enc3 = ResBlock(2 * c, 2 * c, temb, g)
        self.mid1 = ResBlock(2 * c, 2 * c, temb, g)
        self.attn = Attention(2 * c, g) if attention else nn.Identity()
        self.mid2 = ResBlock(2 * c, 2 * c, temb, g)
        self.dec3 = ResBlock(4 * c, 2 * c, temb, g)
        self.up2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.dec2 = ResBlock(4 * c, 2 * c, temb, g)
        self.up1 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.dec1 = ResBlock(3 * c, c, temb, g)
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        # The class embedding (unet.hpp: --classes), N(0, 1) as nn.Embedding starts; label 10 = none.
        self.class_emb = nn.Embedding(NULL_LABEL + 1, temb) if classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        emb = self.time2(F.silu(self.time1(timestep_embedding(t, self.channels))))
        if self.class_emb is not None:  # no labels: the null label's output, as in unet.hpp
            emb = emb + (self.class_emb.weight[self.null_label] if labels is None else self.class_emb(labels.long()))
        elif labels is not None:
            raise ValueError("labels given to a U-Net without a class embedding")
        h1 = self.enc1(self.conv_in(x), emb)
        h2 = self.enc2(self.down1(h1), emb)
        h3 = self.enc3(self.down2(h2), emb)
        h = self.mid2(self.attn(self.mid1(h3, emb)), emb)
        h = self.dec3(torch.cat([h, h3], 1), emb)
        h = self.dec2(torch.cat([self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest")), h2], 1), emb)
        h = self.dec1(torch.cat([self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest")), h1], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def read_state(checkpoint: str) -> dict:
    state = {}
    with open(os.path.join(checkpoint, "state.txt")) as f:
        for line in f:
            key, value = line.split()
            state[key] = int(value)
    return state


def load_checkpoint(checkpoint: str, weights: str = "ema.pt") -> UNet:
    """The U-Net with the weights of a C++ checkpoint (torch::save archives are
    TorchScript archives: torch.jit.load reads them)."""
    state = read_state(checkpoint)
    model = UNet(channels=state["channels"], attention=bool(state["attention"]),
                 classes=bool(state.get("classes", 0)))
    saved = torch.jit.load(os.path.join(checkpoint, weights), map_location="cpu").state_dict()
    model.load_state_dict(saved, strict=True)
    return model.eval()


def check(args) -> int:
    model = load_checkpoint(args.checkpoint)
    saved = torch.load(args.forward)  # (x, t, eps_hat), or (x, t, eps_hat, labels) of a conditional network
    x, t, cpp = saved[:3]
    labels = saved[3] if len(saved) > 3 else None
    with torch.no_grad():
        py = model(x, t, labels)
    scale = cpp.abs().max().item()
    diff = (py - cpp).abs().max().item()
    # float32 rounding: the two runs use the same kernels but may sum in another
    # order; allow a few ulps of the output's magnitude per layer.
    tolerance = 1e-5 * max(scale, 1.0)
    print(f"C++ vs Python forward pass of {x.shape[0]} images: max |difference| = {diff:.3g} "
          f"(|eps_hat| max {scale:.4g}, tolerance {tolerance:.3g})")
    if scale == 0.0:
        print("FAIL: the C++ output is all zeros (an untrained network checks nothing)")
        return 1
    return 0 if diff <= tolerance else 1


def export(args) -> int:
    model = load_checkpoint(args.checkpoint)
    torch.jit.script(model).save(args.out)
    signature = "forward(x, t, labels=None)" if model.classes else "forward(x, t)"
    print(f"wrote {args.out}: TorchScript {signature} of {args.checkpoint}/ema.pt")
    return 0


def read_images(folder: str, n: int) -> torch.Tensor:
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    count = int.from_bytes(data[4:8], "big")
    n = count if n <= 0 else min(n, count)
    images = torch.frombuffer(bytearray(data[16:16 + n * 784]), dtype=torch.uint8).reshape(n, 1, 28, 28)
    return images.to(torch.float32) / 127.5 - 1.0


def train(args) -> int:
    torch.manual_seed(args.seed)
    data = read_images(args.data, args.images)
    model = UNet(channels=args.channels)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, 0).to(torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    for it in range(args.iters):
        x0 = data[torch.randint(0, data.shape[0], (args.batch,))]
        t = torch.randint(0, 1000, (args.batch,))
        eps = torch.randn_like(x0)
        a = alphas_cumprod[t][:, None, None, None]
        loss = F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (it + 1) % max(1, args.iters // 5) == 0:
            print(f"iteration {it + 1}: loss {loss.item():.4f}")
    torch.jit.script(model.eval()).save(args.out)
    print(f"wrote {args.out}: a Python-trained U-Net as TorchScript")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="compare the Python and C++ forward passes")
    c.add_argument("checkpoint")
    c.add_argument("forward")
    c.set_defaults(run=check)
    e = sub.add_parser("torchscript", help="export a C++ checkpoint as TorchScript")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.set_defaults(run=export)
    t = sub.add_parser("train", help="train in Python and export as TorchScript")
    t.add_argument("out")
    t.add_argument("--iters", type=int, default=20)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--channels", type=int, default=8)
    t.add_argument("--images", type=int, default=512)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    t.set_defaults(run=train)
    args = p.parse_args()
    torch.set_num_threads(1)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
