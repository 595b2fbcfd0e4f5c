"""aria's random numbers (core/rng.cpp) and hashes, re-implemented so the twin draws what aria draws.

aria's Rng is counter-based splitmix64 over (seed, counter); normal() is one Box-Muller value per
call from two uniforms; fill_normal draws in element order in float64 and rounds once to float32.
The twin uses it for exactly the values aria draws at run time: the gates' initial weights
(inject_gated_mlp), a new task's adapter and head (ContinualModel::add_task), the labels the exact
Fisher samples, and replay's buffers and draws. The batch order is not drawn here: aria writes it.
"""
import math

import torch

MASK = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        self.seed = seed & MASK
        self.counter = 0

    def next_u64(self):
        self.counter = (self.counter + 1) & MASK
        z = (self.seed * 0x9E3779B97F4A7C15 + self.counter * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1 = self.uniform()
        u2 = self.uniform()
        if u1 < 1e-300:
            u1 = 1e-300
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)

    def below(self, n):
        return self.next_u64() % n

    def normal_tensor(self, shape, mean, std, dtype=torch.float32):
        n = 1
        for s in shape:
            n *= s
        v = [mean + std * self.normal() for _ in range(n)]
        return torch.tensor(v, dtype=torch.float64).reshape(shape).to(dtype)


def fnv1a(data, h=1469598103934665603):
    for b in data:
        h = ((h ^ b) * 1099511628211) & MASK
    return h


def fnv1a_str(s):
    return fnv1a(s.encode())


class Fnv:
    """The hash tests/test_continual_twin.cpp computes over batches and the initial weights."""

    def __init__(self):
        self.h = 1469598103934665603

    def bytes(self, b):
        self.h = fnv1a(b, self.h)

    def i32(self, v):
        self.bytes(int(v & 0xFFFFFFFF).to_bytes(4, "little"))

    def hex(self):
        return "%016x" % self.h


def batches_fnv(micro_batches):
    f = Fnv()
    for mb in micro_batches:
        f.i32(mb["task"])
        f.i32(len(mb["ids"]))
        for ids, label in zip(mb["ids"], mb["labels"]):
            f.i32(len(ids))
            for t in ids:
                f.i32(t)
            f.i32(label)
    return f.hex()


def params_fnv(params):
    """params: name -> float32 CPU tensor; names sorted, each name's bytes then the values' bytes."""
    f = Fnv()
    for name in sorted(params):
        f.bytes(name.encode())
        f.bytes(params[name].detach().to(torch.float32).contiguous().numpy().tobytes())
    return f.hex()
