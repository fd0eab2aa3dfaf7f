#!/usr/bin/env python3
"""Writes the TorchScript modules that tests/torch/test_torch.cpp loads.

    python3 make_scripted.py OUT_DIR

Run by ctest as a fixture (torch.make_scripted) before the test_torch cases:
  tiny_denoiser.pt       forward(x, t): x (B, 2, 6, 5) float32, t (B,) int64
  tiny_conditioned.pt    forward(x, t, labels): labels (B,) int64, 3 classes
  tiny_tuple.pt          forward(x, t) returning (eps,), like diffusers with return_dict=False
Weights come from torch.manual_seed(0) (the same in all three); the C++ test compares the wrapper with
calling the loaded module by hand, so it does not depend on their values.
"""
import math
import os
import sys

import torch


class TinyDenoiser(torch.nn.Module):
    def __init__(self, channels: int = 2, classes: int = 0):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.time = torch.nn.Linear(8, channels)
        self.label = torch.nn.Embedding(max(classes, 1), channels)
        freqs = torch.exp(-math.log(1000.0) * torch.arange(4, dtype=torch.float32) / 4)
        self.register_buffer("freqs", freqs)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        a = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return self.time(torch.cat([torch.sin(a), torch.cos(a)], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)) + self.embed(t)[:, :, None, None]


class TinyConditioned(TinyDenoiser):
    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)) + self.embed(t)[:, :, None, None]
        return h + self.label(labels)[:, :, None, None]


class TinyTuple(TinyDenoiser):
    def forward(self, x: torch.Tensor, t: torch.Tensor):
        return (torch.tanh(self.conv(x)) + self.embed(t)[:, :, None, None],)


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name, make in (("tiny_denoiser.pt", TinyDenoiser),
                       ("tiny_conditioned.pt", lambda: TinyConditioned(classes=3)),
                       ("tiny_tuple.pt", TinyTuple)):
        torch.manual_seed(0)  # the same conv and time weights in all three
        module = make()
        scripted = torch.jit.script(module.eval())
        scripted.save(os.path.join(out, name))
        print("wrote", os.path.join(out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
