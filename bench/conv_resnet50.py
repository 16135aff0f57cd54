#!/usr/bin/python3
"""ResNet50 convolution shapes, forward + backward: colorize vs PyTorch.

Runs build/release/bench/conv_resnet50 (our engine) as a child process and
PyTorch 1.13 in this process, interleaved: each repeat times every shape once
in each of colorize fp32, colorize bf16, PyTorch fp32 and PyTorch bf16
(autocast), so machine noise hits all of them alike. Prints min and median
seconds per shape and the ratios against the named baselines.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/conv_resnet50.py [--repeats 7] [--channels-last]

Baselines: PyTorch fp32 ("torch32"); the bf16 target is against our own fp32.
With --verbose, the oneDNN kernels colorize ran are listed (ONEDNN_VERBOSE),
and the time of the convolution primitives alone, per precision.
With --channels-last, every convolution's input, output and their gradients
are NHWC fp32 on both sides (ours: cz_graph_config.channels_last_io;
PyTorch: torch.channels_last), as between two layers of a network that
keeps them so (our training graphs do); without, plain NCHW, which each
call converts to the layouts the kernels want and back.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BINARY = os.path.join(ROOT, "build", "release", "bench", "conv_resnet50")


class Engine:
    """The C side, kept alive so its primitives are created once."""

    def __init__(self, verbose, channels_last):
        env = dict(os.environ)
        if verbose:
            env["ONEDNN_VERBOSE"] = "1"
        argv = [BINARY] + (["--channels-last"] if channels_last else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                sys.exit("conv_resnet50 binary stopped")
            line = line.strip()
            if line == "end":
                return lines
            if not line.startswith("onednn_verbose"):
                lines.append(line)
            else:
                self.verbose_lines.append(line)

    verbose_lines = []


def torch_pass(shapes, state, bf16, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    times = {}
    for s in shapes:
        name = s["name"]
        if name not in state:
            x = (torch.rand(s["n"], s["ic"], s["h"], s["w"]) - 0.5).to(memory_format=fmt)
            x.requires_grad_(name != "stem_7x7")
            w = (torch.randn(s["oc"], s["ic"], s["k"], s["k"]) * 0.02).to(memory_format=fmt)
            w.requires_grad_()
            b = torch.zeros(s["oc"]).requires_grad_()
            state[name] = (x, w, b)
        x, w, b = state[name]
        oh = (s["h"] + 2 * s["padding"] - s["k"]) // s["stride"] + 1
        ow = (s["w"] + 2 * s["padding"] - s["k"]) // s["stride"] + 1
        # made outside the timing, as ours
        grad = torch.full((s["n"], s["oc"], oh, ow), 1e-3).to(memory_format=fmt)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.conv2d(x, w, b, stride=s["stride"], padding=s["padding"])
        y.backward(grad.to(y.dtype))
        times[name] = time.perf_counter() - t0
        x.grad = w.grad = b.grad = None
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)

    engine = Engine(args.verbose, args.channels_last)
    shapes = []
    for line in engine.ask("list"):
        f = line.split()
        shapes.append(dict(name=f[0], n=int(f[1]), ic=int(f[2]), oc=int(f[3]), h=int(f[4]),
                           w=int(f[5]), k=int(f[6]), stride=int(f[7]), padding=int(f[8]),
                           count=int(f[9])))
    kinds = ["ours32", "ours16", "torch32", "torch16"]
    samples = {k: {s["name"]: [] for s in shapes} for k in kinds}
    state32, state16 = {}, {}
    for repeat in range(args.repeats + 1):  # repeat 0 warms everything up
        results = {
            "ours32": {l.split()[0]: float(l.split()[1]) for l in engine.ask("pass fp32")},
            "torch32": torch_pass(shapes, state32, False, args.channels_last),
            "ours16": {l.split()[0]: float(l.split()[1]) for l in engine.ask("pass bf16")},
            "torch16": torch_pass(shapes, state16, True, args.channels_last),
        }
        if repeat > 0:
            for k in kinds:
                for name, t in results[k].items():
                    samples[k][name].append(t)

    layout = "channels-last (NHWC)" if args.channels_last else "plain NCHW"
    print(f"ResNet50 conv shapes, batch 8, forward+backward, {layout} inputs and outputs, "
          f"{args.repeats} repeats, 2 threads, torch {torch.__version__}; milliseconds as min/median")
    print(f"{'shape':24s} {'ours fp32':>13s} {'ours bf16':>13s} {'torch fp32':>13s} "
          f"{'torch bf16':>13s} {'t32/o32':>8s} {'o32/o16':>8s} {'t16/o16':>8s}")
    totals = {k: [0.0, 0.0] for k in kinds}
    for s in shapes:
        row = {}
        for k in kinds:
            v = samples[k][s["name"]]
            row[k] = (min(v), statistics.median(v))
            totals[k][0] += s["count"] * row[k][0]
            totals[k][1] += s["count"] * row[k][1]
        cells = " ".join(f"{1e3 * row[k][0]:6.1f}/{1e3 * row[k][1]:6.1f}" for k in kinds)
        print(f"{s['name']:24s} {cells} {row['torch32'][1] / row['ours32'][1]:8.2f} "
              f"{row['ours32'][1] / row['ours16'][1]:8.2f} {row['torch16'][1] / row['ours16'][1]:8.2f}")
    cells = " ".join(f"{1e3 * totals[k][0]:6.0f}/{1e3 * totals[k][1]:6.0f}" for k in kinds)
    print(f"{'ResNet50 total (x count)':24s} {cells} "
          f"{totals['torch32'][1] / totals['ours32'][1]:8.2f} "
          f"{totals['ours32'][1] / totals['ours16'][1]:8.2f} "
          f"{totals['torch16'][1] / totals['ours16'][1]:8.2f}")
    print("ratios on medians: t32/o32 = PyTorch fp32 time / ours fp32 (target >= 1.0); "
          "o32/o16 = ours fp32 / ours bf16 (target >= 2.5); t16/o16 = PyTorch bf16 autocast / ours bf16")
    if args.verbose:
        impls = {}
        for line in engine.verbose_lines:
            f = line.split(",")
            if len(f) > 6 and f[1] == "exec":
                key = f"{f[3]} {f[4]} {f[5]}"
                impls[key] = impls.get(key, 0) + 1
        print("\noneDNN kernels colorize ran (ONEDNN_VERBOSE):")
        for key, count in sorted(impls.items(), key=lambda kv: -kv[1]):
            print(f"  {count:6d}  {key}")
        # The ceiling on our bf16 / fp32 ratio: the convolution primitives
        # alone, and the matmuls that run a bf16 1x1 convolution's backward
        # (src/ops/conv.c), without any conversion (every pass, warm-up
        # included).
        conv_ms = {"fp32": 0.0, "bf16": 0.0}
        for line in engine.verbose_lines:
            f = line.split(",")
            if len(f) > 6 and f[1] == "exec" and f[3] in ("convolution", "matmul"):
                conv_ms["bf16" if "bf16" in f[6] else "fp32"] += float(f[-1])
        passes = args.repeats + 1
        print(f"convolution and matmul primitives alone, each shape once, per pass: fp32 "
              f"{conv_ms['fp32'] / passes:.0f} ms, bf16 {conv_ms['bf16'] / passes:.0f} ms "
              f"(fp32 / bf16 = {conv_ms['fp32'] / max(conv_ms['bf16'], 1e-9):.2f})")
    engine.proc.stdin.close()
    engine.proc.wait()


if __name__ == "__main__":
    main()
