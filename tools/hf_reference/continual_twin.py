#!/usr/bin/env python3
"""A PyTorch twin of aria's continual trainer (docs/twin.md): the same model (GPT-2 + PlasticityGatedMLP
+ task adapters + per-task heads), parameter groups, plasticity loss, dampening, exact per-sample
Fisher, SPC/EWC penalties, clipping and AdamW, written independently from ../shared/aria-spec.md.

Two uses:
  fixture: --setup DIR --out DIR
      DIR is what ARIA_TWIN_DUMP=DIR build/tests/test_continual_twin writes (the initial GPT-2, the
      settings, the tasks, every method's micro-batches in aria's order, aria's own numbers). Runs every
      method, writes OUT/twin.json (per-step losses, gradient norms, gate means) and
      OUT/twin_fisher.safetensors (every Fisher), and prints how far aria's numbers are from them.
  speed:   --bench --model d12 --seq 512 --batch 16 [--compile] [--fisher-batches 8]
      times the aria method's continual step and a per-sample Fisher pass (twin_bench.py), one JSON line.
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from twin_io import load_safetensors, save_safetensors  # noqa: E402
from twin_rng import batches_fnv, params_fnv  # noqa: E402
from twin_trainer import METHODS, run_method  # noqa: E402


def fail(msg, code=1):
    print("continual_twin: error: " + msg, file=sys.stderr)
    sys.exit(code)


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a)


def compare_with_aria(method, steps, aria_steps, fishers, aria_fisher):
    worst = {}
    for s, a in zip(steps, aria_steps):
        for k in ("loss", "ce", "plasticity", "method_loss", "grad_norm"):
            worst[k] = max(worst.get(k, 0.0), rel(a[k], s[k]))
        worst["spc/scale"] = max(worst.get("spc/scale", 0.0), abs(a["spc"] - s["spc"]) / max(s["spc_scale"], 1e-30))
    fworst = 0.0
    for tid, f in fishers:
        for name, t in f.items():
            key = "%s/%d/%s" % (method, tid, name)
            if key in aria_fisher:
                top = t.abs().max().item()
                fworst = max(fworst, (aria_fisher[key] - t).abs().max().item() / max(top, 1e-30))
    print("  %-10s steps %3d (aria %3d) | %s | Fisher max|diff|/max %.2e" % (
        method, len(steps), len(aria_steps), " ".join("%s %.1e" % kv for kv in worst.items()), fworst))


def fixture_mode(args):
    with open(os.path.join(args.setup, "setup.json")) as f:
        setup = json.load(f)
    if setup.get("format") != "aria-twin-setup/1":
        fail("%s/setup.json is not an aria twin setup (format %r)" % (args.setup, setup.get("format")))
    initial = load_safetensors(os.path.join(args.setup, setup["initial"]))
    if params_fnv(initial) != setup["initial_fnv"]:
        fail("the initial model's hash differs from the one in setup.json")
    aria_fisher = {}
    path = os.path.join(args.setup, "aria_fisher.safetensors")
    if os.path.exists(path):
        aria_fisher = load_safetensors(path)
    methods = args.methods.split(",") if args.methods else list(setup["methods"])
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    out = {"format": "aria-twin-fixture/1",
           "generated": {"by": "tools/hf_reference/continual_twin.py", "torch": torch.__version__,
                         "device": args.device, "dtype": args.dtype, "fisher": args.fisher,
                         "date": datetime.date.today().isoformat()},
           "initial_fnv": setup["initial_fnv"], "methods": {}}
    fisher_out = {}
    print("twin vs aria (largest relative differences over the steps):")
    for m in methods:
        if m not in METHODS:
            fail("unknown method %r (the twin knows %s)" % (m, ", ".join(METHODS)), 2)
        d = setup["methods"][m]
        fnv = batches_fnv(d["micro_batches"])
        if fnv != d["batches_fnv"]:
            fail("method %s: the micro-batches' hash differs from the one in setup.json" % m)
        steps, fishers = run_method(setup, m, initial, args.device, dtype, args.fisher)
        keys, spread = [], {}
        # The Fisher's own sensitivity to float32 rounding: the same run in float64, and per tensor
        # max|F32 - F64| / max|F64| (the test's Fisher tolerance grows with it; docs/twin.md).
        f64 = run_method(setup, m, initial, args.device, torch.float64, args.fisher)[1] if fishers else []
        for (tid, f), (_, g) in zip(fishers, f64 or [(None, {})] * len(fishers)):
            for name, t in f.items():
                keys.append("%d/%s" % (tid, name))
                fisher_out["%s/%d/%s" % (m, tid, name)] = t
                if name in g:
                    ref = g[name].double()
                    spread["%d/%s" % (tid, name)] = ((t.double() - ref).abs().max() / ref.abs().max()).item()
        out["methods"][m] = {"batches_fnv": fnv, "steps": steps, "fisher": keys, "fisher_f32_spread": spread}
        compare_with_aria(m, steps, d.get("aria_steps", []), fishers, aria_fisher)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "twin.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    save_safetensors(os.path.join(args.out, "twin_fisher.safetensors"), fisher_out)
    print("wrote %s/twin.json and %s/twin_fisher.safetensors" % (args.out, args.out))


def main():
    if "--bench" in sys.argv[1:]:
        import twin_bench
        sys.exit(twin_bench.main([x for x in sys.argv[1:] if x != "--bench"]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", help="folder written by ARIA_TWIN_DUMP (fixture mode)")
    ap.add_argument("--out", help="fixture folder to write (fixture mode)")
    ap.add_argument("--methods", help="comma-separated subset (default: every method in the setup)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--fisher", default="loop", choices=["loop", "vmap", "einsum"],
                    help="per-sample gradients: one backward per sample, torch.func vmap(grad), or the "
                         "slow pathway's x^T dy products (default loop)")
    ap.add_argument("--bench", action="store_true", help="speed mode (twin_bench.py)")
    args = ap.parse_args()
    if not args.setup or not args.out:
        fail("fixture mode needs --setup DIR and --out DIR (or --bench)", 2)
    if not os.path.exists(os.path.join(args.setup, "setup.json")):
        fail("%s/setup.json not found (write it with ARIA_TWIN_DUMP=%s build/tests/test_continual_twin)"
             % (args.setup, args.setup))
    fixture_mode(args)


if __name__ == "__main__":
    main()
