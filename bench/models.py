#!/usr/bin/python3
"""Whole networks, colorize vs PyTorch: generator inference and the GAN step.

Runs build/release/bench/models (our engine) as a child process and PyTorch
1.13 in this process, on the same architectures (tools/make_model_fixtures.py
is the PyTorch reference of each), the same weights (our child writes them,
PyTorch loads them), the same inputs and shapes, interleaved: each repeat
times every variant once in turn, so machine noise hits all of them alike.
The first repeat warms up and is not counted. Prints min and median
milliseconds, images per second from the median, and the ratios against
the named baselines, then which targets of issue 7 hold.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/models.py infer [--arch A] [--batch N] [--repeats 5]
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/models.py gan --arch A [--repeats 5]
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/models.py memory [--arch A] [--what gan]
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/models.py profile ARCH BATCH SIZE PRECISION
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/models.py ab --before OLD/bench/models [--arch A] [--batch N] [--rounds 2] [--repeats 5]

infer   each generator at its size (unet 256, ResNet ones 224), batch 1 and 8
        (--batch N, repeatable, picks some):
        ours fp32 and bf16; PyTorch fp32, bf16 autocast, and bf16 weights
        with channels_last (eval mode, inference_mode). "torch bf16 best" is
        the faster of the two bf16 settings, per row. Also checks, per
        generator, that PyTorch's fp32 output equals ours (same network).
gan     one full GAN step of generator + PatchGAN, batch 8 (src/train/train.c's
        step: G forward, D on fake and real with backward, Adam on D,
        frozen-D backward into G plus 100 x L1, Adam on G; the ResNet encoder
        trained). ours fp32 against PyTorch fp32, then ours bf16 against
        PyTorch bf16 autocast (two phases, so that at most two steps' worth
        of memory is held at once). The first-step losses of both sides are
        printed: with the same weights and inputs they agree (unet: dropout
        masks differ).
memory  peak resident memory (VmHWM) per configuration, each in a fresh
        process on both sides: two GAN steps (or two inferences at batch 1),
        the weights read from files on both sides (ours as the colorizer
        reads a model: straight into the graph).
        PyTorch's line also gives its resident memory after `import torch`.
ab      ours against ours: generator inference of this build against another
        build of bench/models (--before: a copy made before a change), fp32
        and bf16, no PyTorch: --rounds fresh pairs of processes, each pair
        interleaved as above, taking turns going first. Also the relative
        difference of their batch-1 outputs.
profile one configuration with ONEDNN_VERBOSE=1 (a warm-up step, then
        --steps timed steps): oneDNN time per primitive kind, propagation and
        implementation, and the wall time left to our own code (--binary:
        another build's bench/models).

unet under bf16: torch 1.13's bf16 conv_transpose2d is broken (it runs as a
forward convolution and fails), so PyTorch's unet runs its transposed
convolutions in fp32 in both bf16 settings; everything else is bf16.
With the ImageNet ResNet50 in cache/resnet50/ (`make weights`), ResNet
generators start from it on both sides, as training does. PyTorch runs on
OpenBLAS when it is found (bench/README.md); --netlib keeps Debian's default
reference BLAS. The header line names the BLAS in use.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BINARY = os.path.join(ROOT, "build", "release", "bench", "models")
ENCODER = os.path.join(ROOT, "cache", "resnet50", "resnet50-keras-imagenet.safetensors")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_model_fixtures as ref  # noqa: E402  (the PyTorch reference architectures)

# Debian's torch runs conv_transpose2d (unet) and linear layers through
# libblas.so.3, which is netlib's reference BLAS unless OpenBLAS is the
# alternative; OpenBLAS is 18x faster on unet's transposed convolutions here.
# Without touching the system's alternative, the driver runs PyTorch on the
# first OpenBLAS found (see bench/README.md for cache/openblas).
OPENBLAS_DIRS = ("/usr/lib/x86_64-linux-gnu/openblas-pthread",
                 os.path.join(ROOT, "cache", "openblas", "usr", "lib", "x86_64-linux-gnu",
                              "openblas-pthread"))

SIZES = {"unet": 256, "resnet50-paper": 224, "resnet50-unet": 224}
GAN_BATCH = 8
THREADS = 2
# pix2pix's training hyper-parameters (cz_train_defaults; bench/models.c).
ADAM_LR, ADAM_BETAS, LAMBDA_L1 = 2e-4, (0.5, 0.999), 100.0
# The input patterns of bench/models.c.
L_MULTIPLIER, AB_MULTIPLIER, AB_SCALE = 7919, 104729, 0.5
# Issue 7's targets: PyTorch's median time / ours.
TARGETS = {"infer32": 4.5, "infer16": 1.5, "gan32": 3.0, "gan16": 1.5}


# --- the C side ----------------------------------------------------------------

class Engine:
    """bench/models kept alive, so each configuration's graphs are built once."""

    def __init__(self, verbose=False, binary=BINARY, weights=None):
        env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
        if verbose:
            env["ONEDNN_VERBOSE"] = "1"
        args = [binary] + (["--encoder", ENCODER] if os.path.exists(ENCODER) else [])
        args += ["--weights", weights] if weights else []
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `make bench` first")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.verbose_lines = []

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                sys.exit(f"bench/models stopped during: {command}")
            if line.startswith("onednn_verbose"):
                self.verbose_lines.append(line.strip())
                continue
            words = line.split()
            if words[0] != "ok":
                sys.exit(f"bench/models: {command}: {line.strip()}")
            return [float(w) for w in words[1:]]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


# --- the PyTorch side ----------------------------------------------------------

def read_model(path):
    """A colorize model file (safetensors, F32) as a state_dict."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(blob[a:b], dtype="<f4").copy()
                                       .reshape(info["shape"]))
    return state


def make_net(arch):
    if arch == "unet":
        return ref.Unet(64, use_dropout=True)
    if arch == "patchgan":
        return ref.PatchGAN(64)
    return ref.ResNetGenerator(64, 64, "keras", skips=arch == "resnet50-unet")


def load_net(arch, weights):
    net = make_net(arch)
    missing, unexpected = net.load_state_dict(read_model(weights[arch]), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"{arch}: the model file does not match PyTorch's network: "
                 f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net


class FP32ConvTranspose(nn.Module):
    """A transposed convolution kept in fp32 whatever the dtype around it:
    torch 1.13's bf16 conv_transpose2d runs as a forward convolution."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        with torch.autocast("cpu", enabled=False):
            return self.conv.float()(x.float()).to(x.dtype)


def fp32_transposed_convs(net):
    found = [(module, name, child) for module in net.modules()
             for name, child in module.named_children() if isinstance(child, nn.ConvTranspose2d)]
    for module, name, child in found:
        setattr(module, name, FP32ConvTranspose(child))
    return net


def pattern(shape, multiplier, scale=1.0):
    """bench/models.c's fill_pattern, in float32 as there."""
    n = int(np.prod(shape))
    idx = (torch.arange(n, dtype=torch.int64) * multiplier) % 255
    return ((idx.to(torch.float32) / 127.5 - 1.0) * scale).reshape(shape)


class TorchInfer:
    """kind: fp32, autocast (bf16 autocast on the fp32 network) or bf16cl
    (bf16 weights and input, channels_last)."""

    def __init__(self, arch, batch, size, kind, weights):
        net = load_net(arch, weights).eval()
        x = pattern((batch, 1, size, size), L_MULTIPLIER)
        if kind != "fp32" and arch == "unet":
            fp32_transposed_convs(net)
        if kind == "bf16cl":
            net = net.to(torch.bfloat16).to(memory_format=torch.channels_last)
            # The ResNet generators' input normalisation has fp32 constants:
            # convolutions take their input in their weights' dtype.
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.register_forward_pre_hook(lambda m, inp: (inp[0].to(m.weight.dtype),))
            x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        self.net, self.x, self.autocast = net, x, kind == "autocast"

    def run(self):
        """Wall and CPU seconds (this process, all threads)."""
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=self.autocast):
            y = self.net(self.x)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.y = y
        return seconds, cpu


class TorchGan:
    """pix2pix's optimize_parameters, as bench/models.c's gan_step."""

    def __init__(self, arch, batch, size, bf16, weights):
        self.G = load_net(arch, weights).train()
        self.D = load_net("patchgan", weights).train()
        if bf16 and arch == "unet":
            fp32_transposed_convs(self.G)
        self.bf16 = bf16
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=ADAM_LR, betas=ADAM_BETAS)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=ADAM_LR, betas=ADAM_BETAS)
        self.L = pattern((batch, 1, size, size), L_MULTIPLIER)
        self.ab = pattern((batch, 2, size, size), AB_MULTIPLIER, AB_SCALE)
        with torch.no_grad():
            shape = self.D(torch.zeros(1, 3, size, size)).shape[1:]
        self.ones = torch.ones((batch,) + shape)
        self.zeros = torch.zeros((batch,) + shape)

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def run(self):
        bce = F.binary_cross_entropy_with_logits
        t0, c0 = time.perf_counter(), time.process_time()
        with self.autocast():
            fake = self.G(self.L).float()
        # D: fake then real, half of the loss each.
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.D(torch.cat([self.L, fake.detach()], 1)).float()
            pred_real = self.D(torch.cat([self.L, self.ab], 1)).float()
        d_fake, d_real = bce(pred_fake, self.zeros), bce(pred_real, self.ones)
        (0.5 * (d_fake + d_real)).backward()
        self.opt_d.step()
        # G: through a frozen D that must call G's output real, plus L1.
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            pred = self.D(torch.cat([self.L, fake], 1)).float()
        g_gan, l1 = bce(pred, self.ones), F.l1_loss(fake, self.ab)
        (g_gan + LAMBDA_L1 * l1).backward()
        self.opt_g.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.losses = [float(v) for v in (d_fake, d_real, g_gan, l1)]
        return seconds, cpu


def memory_kib():
    """VmHWM and VmRSS of this process, in KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line[:5]] = int(line.split()[1])
    return out["VmHWM"], out["VmRSS"]


# --- reporting -----------------------------------------------------------------

def stats(samples):
    return min(samples), statistics.median(samples)


def cell(samples):
    lo, med = stats(samples)
    return f"{1e3 * lo:7.0f}/{1e3 * med:<7.0f}"


def ratio(at, theirs, ours):
    """PyTorch's time over ours, on the mins and on the medians."""
    return at[0][theirs] / at[0][ours], at[1][theirs] / at[1][ours]


def rcell(r):
    return f"{r[0]:4.2f}/{r[1]:<4.2f}"


def verdict(r, target):
    """A target holds when it holds on the medians and on the mins."""
    held = [x >= TARGETS[target] for x in r]
    return "holds" if all(held) else "MISSED" if not any(held) else "holds on the mins only" \
        if held[0] else "holds on the medians only"


def blas_in_use():
    """The BLAS library this process loaded (torch links libblas.so.3)."""
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path):
                return "OpenBLAS" if "openblas" in path else "netlib reference BLAS " + path
    return "no BLAS loaded"


def use_openblas():
    """Re-runs this script with OpenBLAS first on the library path, if found."""
    if os.environ.get("CZ_BENCH_BLAS_SET"):
        return
    for d in OPENBLAS_DIRS:
        if os.path.exists(os.path.join(d, "libblas.so.3")):
            env = dict(os.environ, CZ_BENCH_BLAS_SET="1", OPENBLAS_NUM_THREADS=str(THREADS),
                       LD_LIBRARY_PATH=d + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
            os.execve(sys.executable, [sys.executable] + sys.argv, env)


def machine_line(repeats):
    return (f"{repeats} timed repeats after 1 warm-up, {THREADS} threads, torch {torch.__version__} "
            f"on {blas_in_use()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
            f"load average at the end {os.getloadavg()[0]:.1f}")


def save_weights(engine, archs, directory):
    weights = {}
    for arch in archs:
        weights[arch] = os.path.join(directory, arch + ".safetensors")
        engine.ask(f"save {arch} {SIZES.get(arch, 224)} {weights[arch]}")
    return weights


# --- infer ---------------------------------------------------------------------

def bench_infer(args):
    torch.set_num_threads(THREADS)
    engine = Engine()
    kinds = ["ours32", "ours16", "torch32", "autocast", "bf16cl"]
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_weights(engine, args.arch, tmp)
        for arch in args.arch:
            size = SIZES[arch]
            # Same network: our fp32 output against PyTorch's, batch 1.
            engine.ask(f"output {arch} {size} fp32 {tmp}/out.f32")
            ours = torch.from_numpy(np.fromfile(f"{tmp}/out.f32", dtype="<f4"))
            t = TorchInfer(arch, 1, size, "fp32", weights)
            t.run()
            theirs = t.y.flatten()
            checks.append((arch, float((ours - theirs).norm() / theirs.norm())))
            for batch in args.batch:
                torch_side = {"torch32": TorchInfer(arch, batch, size, "fp32", weights),
                              "autocast": TorchInfer(arch, batch, size, "autocast", weights),
                              "bf16cl": TorchInfer(arch, batch, size, "bf16cl", weights)}
                samples = {k: [] for k in kinds}
                cpu = {k: [] for k in kinds}
                for repeat in range(args.repeats + 1):
                    got = {"ours32": engine.ask(f"infer {arch} {batch} {size} fp32"),
                           "torch32": torch_side["torch32"].run(),
                           "ours16": engine.ask(f"infer {arch} {batch} {size} bf16"),
                           "autocast": torch_side["autocast"].run(),
                           "bf16cl": torch_side["bf16cl"].run()}
                    if repeat > 0:
                        for k in kinds:
                            samples[k].append(got[k][0])
                            cpu[k].append(got[k][1])
                rows.append((arch, size, batch, samples, cpu))
                del torch_side
            engine.ask("drop")
    engine.close()

    print(f"Generator inference: milliseconds per batch, min/median; {machine_line(args.repeats)}")
    print(f"{'generator':15s} {'size':>4s} {'N':>2s} {'ours fp32':>15s} {'ours bf16':>15s} "
          f"{'torch fp32':>15s} {'torch autocast':>15s} {'torch bf16+cl':>15s} | "
          f"{'img/s: o32':>10s} {'o16':>6s} {'t32':>6s} {'t16':>6s} | "
          f"{'t32/o32':>9s} {'t32/o16':>9s} {'t16/o16':>9s}")
    verdicts = []
    for arch, size, batch, s, _ in rows:
        at = [{k: stats(v)[i] for k, v in s.items()} for i in (0, 1)]  # mins, medians
        for a in at:
            a["best16"] = min(a["autocast"], a["bf16cl"])
        med = at[1]
        r32_32, r32_16, r16_16 = (ratio(at, "torch32", "ours32"), ratio(at, "torch32", "ours16"),
                                  ratio(at, "best16", "ours16"))
        print(f"{arch:15s} {size:4d} {batch:2d} {cell(s['ours32'])} {cell(s['ours16'])} "
              f"{cell(s['torch32'])} {cell(s['autocast'])} {cell(s['bf16cl'])} | "
              f"{batch / med['ours32']:10.2f} {batch / med['ours16']:6.2f} "
              f"{batch / med['torch32']:6.2f} {batch / med['best16']:6.2f} | "
              f"{rcell(r32_32)} {rcell(r32_16)} {rcell(r16_16)}")
        if batch == 1:
            best = max(r32_32, r32_16, key=lambda r: r[1])
            verdicts.append(f"{arch} batch 1: ours (faster of fp32/bf16) is {rcell(best).strip()}x "
                            f"PyTorch fp32, target >= {TARGETS['infer32']}: {verdict(best, 'infer32')}; "
                            f"ours bf16 is {rcell(r16_16).strip()}x PyTorch's best bf16, "
                            f"target >= {TARGETS['infer16']}: {verdict(r16_16, 'infer16')}")
    print("img/s from medians; ratios PyTorch time / ours (above 1: we are faster) as on mins/on "
          "medians; t16 = the faster of torch autocast and torch bf16+cl (bf16 weights, "
          "channels_last), per row")
    for line in verdicts:
        print("target: " + line)
    print("CPU seconds per batch (process CPU time, all threads: what other processes' load "
          "disturbs least), median; ratios on them")
    print(f"{'generator':15s} {'size':>4s} {'N':>2s} {'ours fp32':>9s} {'ours bf16':>9s} "
          f"{'torch fp32':>10s} {'autocast':>9s} {'bf16+cl':>9s} | {'t32/o32':>7s} {'t32/o16':>7s} "
          f"{'t16/o16':>7s}")
    for arch, size, batch, _, c in rows:
        m = {k: statistics.median(v) for k, v in c.items()}
        best16 = min(m["autocast"], m["bf16cl"])
        print(f"{arch:15s} {size:4d} {batch:2d} {m['ours32']:9.2f} {m['ours16']:9.2f} "
              f"{m['torch32']:10.2f} {m['autocast']:9.2f} {m['bf16cl']:9.2f} | "
              f"{m['torch32'] / m['ours32']:7.2f} {m['torch32'] / m['ours16']:7.2f} "
              f"{best16 / m['ours16']:7.2f}")
    for arch, err in checks:
        print(f"same network: {arch} batch 1 fp32 output, ours vs PyTorch, relative difference {err:.1e}")


# --- ab ------------------------------------------------------------------------

def bench_ab(args):
    binaries = {"before": args.before, "after": BINARY}
    kinds = [(side, prec) for prec in ("fp32", "bf16") for side in ("before", "after")]
    rows, diffs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            size = SIZES[arch]
            out = {}
            for side, binary in binaries.items():
                e = Engine(binary=binary)
                for prec in ("fp32", "bf16"):
                    e.ask(f"output {arch} {size} {prec} {tmp}/out.f32")
                    out[side, prec] = np.fromfile(f"{tmp}/out.f32", dtype="<f4").astype(np.float64)
                e.close()
            for prec in ("fp32", "bf16"):
                diffs.append((arch, prec, np.linalg.norm(out["after", prec] - out["before", prec])
                              / np.linalg.norm(out["before", prec])))
            for batch in args.batch:
                samples = {k: [] for k in kinds}
                cpu = {k: [] for k in kinds}
                # Two processes side by side do not run alike (which one is
                # faster changes from one pair to the next), so each round
                # starts a fresh pair, in alternating order, and within a
                # round the two take turns going first.
                for rnd in range(args.rounds):
                    sides = ("before", "after") if rnd % 2 == 0 else ("after", "before")
                    engines = {side: Engine(binary=binaries[side]) for side in sides}
                    for repeat in range(args.repeats + 1):
                        order = kinds if repeat % 2 else [k for pair in zip(kinds[1::2], kinds[::2])
                                                          for k in pair]
                        for side, prec in order:
                            got = engines[side].ask(f"infer {arch} {batch} {size} {prec}")
                            if repeat > 0:
                                samples[(side, prec)].append(got[0])
                                cpu[(side, prec)].append(got[1])
                    for e in engines.values():
                        e.close()
                rows.append((arch, size, batch, samples, cpu))

    print(f"Generator inference, this build against {args.before}: milliseconds per batch, "
          f"min/median; {args.rounds} rounds of {machine_line(args.repeats)}")
    print(f"{'generator':15s} {'size':>4s} {'N':>2s} {'before fp32':>15s} {'after fp32':>15s} "
          f"{'before bf16':>15s} {'after bf16':>15s} | {'fp32 b/a':>9s} {'bf16 b/a':>9s}")
    for arch, size, batch, s, _ in rows:
        at = [{k: stats(v)[i] for k, v in s.items()} for i in (0, 1)]
        r32 = ratio(at, ("before", "fp32"), ("after", "fp32"))
        r16 = ratio(at, ("before", "bf16"), ("after", "bf16"))
        print(f"{arch:15s} {size:4d} {batch:2d} {cell(s[('before', 'fp32')])} "
              f"{cell(s[('after', 'fp32')])} {cell(s[('before', 'bf16')])} "
              f"{cell(s[('after', 'bf16')])} | {rcell(r32)} {rcell(r16)}")
    print("ratios: before time / after time (above 1: this build is faster), on mins/on medians")
    print("CPU milliseconds per batch (process CPU time, all threads: what other processes' load "
          "disturbs least), median; ratios on them")
    for arch, size, batch, _, c in rows:
        m = {k: 1e3 * statistics.median(v) for k, v in c.items()}
        print(f"{arch:15s} {size:4d} {batch:2d} {m[('before', 'fp32')]:15.0f} "
              f"{m[('after', 'fp32')]:15.0f} {m[('before', 'bf16')]:15.0f} "
              f"{m[('after', 'bf16')]:15.0f} | "
              f"{m[('before', 'fp32')] / m[('after', 'fp32')]:9.2f} "
              f"{m[('before', 'bf16')] / m[('after', 'bf16')]:9.2f}")
    for arch, prec, d in diffs:
        print(f"same output: {arch} batch 1 {prec}, this build vs before, relative difference "
              f"{d:.1e}")


# --- gan -----------------------------------------------------------------------

def bench_gan(args):
    torch.set_num_threads(THREADS)
    engine = Engine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_weights(engine, args.arch + ["patchgan"], tmp)
        for arch in args.arch:
            size = SIZES[arch]
            row = {}
            for precision in ("fp32", "bf16"):
                t = TorchGan(arch, GAN_BATCH, size, precision == "bf16", weights)
                ours, theirs, first = [], [], None
                for repeat in range(args.repeats + 1):
                    reply = engine.ask(f"gan {arch} {GAN_BATCH} {size} {precision}")
                    got = t.run()
                    if repeat == 0:
                        first = (reply[2:], t.losses)
                    else:
                        ours.append(reply[:2])
                        theirs.append(got)
                row[precision] = (ours, theirs, first)
                del t
                engine.ask("drop")
            rows.append((arch, size, row))
    engine.close()

    print(f"GAN step (generator + PatchGAN, batch {GAN_BATCH}, Adam on both, encoder trained): "
          f"milliseconds per step, min/median; {machine_line(args.repeats)}")
    print(f"{'generator':15s} {'size':>4s} {'ours fp32':>15s} {'torch fp32':>15s} {'ours bf16':>15s} "
          f"{'torch autocast':>15s} | {'img/s: o32':>10s} {'t32':>6s} {'o16':>6s} {'t16':>6s} | "
          f"{'t32/o32':>9s} {'t32/o16':>9s} {'t16/o16':>9s}")
    verdicts, loss_lines, cpu_lines = [], [], []
    for arch, size, row in rows:
        o32, t32, f32 = row["fp32"]
        o16, t16, f16 = row["bf16"]
        c = {k: statistics.median(x[1] for x in v)
             for k, v in (("o32", o32), ("t32", t32), ("o16", o16), ("t16", t16))}
        cpu_lines.append(f"{arch:15s} {size:4d} {c['o32']:9.2f} {c['t32']:10.2f} {c['o16']:9.2f} "
                         f"{c['t16']:9.2f} | {c['t32'] / c['o32']:7.2f} {c['t32'] / c['o16']:7.2f} "
                         f"{c['t16'] / c['o16']:7.2f}")
        o32, t32, o16, t16 = ([x[0] for x in v] for v in (o32, t32, o16, t16))
        at = [{k: stats(v)[i] for k, v in (("o32", o32), ("t32", t32), ("o16", o16), ("t16", t16))}
              for i in (0, 1)]
        m = at[1]
        r = (ratio(at, "t32", "o32"), ratio(at, "t32", "o16"), ratio(at, "t16", "o16"))
        print(f"{arch:15s} {size:4d} {cell(o32)} {cell(t32)} {cell(o16)} {cell(t16)} | "
              f"{GAN_BATCH / m['o32']:10.2f} {GAN_BATCH / m['t32']:6.2f} {GAN_BATCH / m['o16']:6.2f} "
              f"{GAN_BATCH / m['t16']:6.2f} | {rcell(r[0])} {rcell(r[1])} {rcell(r[2])}")
        best = max(r[0], r[1], key=lambda x: x[1])
        verdicts.append(f"{arch}: ours (faster of fp32/bf16) is {rcell(best).strip()}x PyTorch fp32, "
                        f"target >= {TARGETS['gan32']}: {verdict(best, 'gan32')}; "
                        f"ours bf16 is {rcell(r[2]).strip()}x PyTorch bf16 autocast, "
                        f"target >= {TARGETS['gan16']}: {verdict(r[2], 'gan16')}")
        for precision, (ours_l, theirs_l) in (("fp32", f32), ("bf16", f16)):
            loss_lines.append(f"first-step losses {arch} {precision} (D fake, D real, G GAN, L1): ours "
                              + " ".join(f"{v:.4f}" for v in ours_l) + ", PyTorch "
                              + " ".join(f"{v:.4f}" for v in theirs_l))
    print("img/s from medians; ratios PyTorch time / ours (above 1: we are faster) as on mins/on medians")
    for line in verdicts:
        print("target: " + line)
    print("CPU seconds per step (process CPU time, all threads: what other processes' load "
          "disturbs least), median; ratios on them")
    print(f"{'generator':15s} {'size':>4s} {'ours fp32':>9s} {'torch fp32':>10s} {'ours bf16':>9s} "
          f"{'autocast':>9s} | {'t32/o32':>7s} {'t32/o16':>7s} {'t16/o16':>7s}")
    for line in cpu_lines:
        print(line)
    for line in loss_lines:
        print(line)


# --- memory --------------------------------------------------------------------

def torch_peak(argv):
    """Child mode: one configuration in a fresh process; prints its memory."""
    what, arch, batch, size, kind, wdir = argv
    base = memory_kib()[1]
    torch.set_num_threads(THREADS)
    weights = {a: os.path.join(wdir, a + ".safetensors") for a in (arch, "patchgan")}
    if what == "gan":
        t = TorchGan(arch, int(batch), int(size), kind == "bf16", weights)
    else:
        t = TorchInfer(arch, int(batch), int(size), kind, weights)
    for _ in range(2):
        t.run()
    print(*memory_kib(), base)


def bench_memory(args):
    what = args.what
    batch = GAN_BATCH if what == "gan" else 1
    setter = Engine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(setter, args.arch + ["patchgan"], tmp)
        setter.close()
        for arch in args.arch:
            size = SIZES[arch]
            for precision, torch_kind in (("fp32", "fp32"),
                                          ("bf16", "bf16" if what == "gan" else "bf16cl")):
                # Weights read from the saved files, as the colorizer and
                # PyTorch (torch.load) read theirs.
                e = Engine(weights=tmp)
                for _ in range(2):
                    e.ask(f"{'gan' if what == 'gan' else 'infer'} {arch} {batch} {size} {precision}")
                ours = e.ask("peak")[0]
                e.close()
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "torch-peak", what,
                                      arch, str(batch), str(size), torch_kind, tmp],
                                     check=True, capture_output=True, text=True).stdout.split()
                theirs, base = int(out[0]), int(out[2])
                rows.append((arch, size, precision, torch_kind, ours, theirs, base))
    label = f"GAN step, batch {GAN_BATCH}" if what == "gan" else "inference, batch 1"
    print(f"Peak resident memory (VmHWM, MiB), {label}, each configuration in a fresh process "
          f"(two runs); PyTorch's includes its {rows[0][6] / 1024:.0f} MiB after `import torch`")
    print(f"{'generator':15s} {'size':>4s} {'ours':>5s} {'torch':>9s} {'ours MiB':>9s} {'torch MiB':>10s} "
          f"{'torch - import':>14s} {'ours/torch':>10s} {'target':>7s}")
    for arch, size, precision, torch_kind, ours, theirs, base in rows:
        # The target is judged on PyTorch's memory beyond its import, the stricter reading.
        ok = ours <= theirs - base
        print(f"{arch:15s} {size:4d} {precision:>5s} {torch_kind:>9s} {ours / 1024:9.0f} "
              f"{theirs / 1024:10.0f} {(theirs - base) / 1024:14.0f} {ours / theirs:10.2f} "
              f"{'holds' if ok else 'MISSED':>7s}")
    print("target: peak memory <= PyTorch's for the same step, judged against PyTorch's peak "
          "less its resident memory after `import torch` (torch - import)")


# --- profile -------------------------------------------------------------------

def bench_profile(args):
    """Where the time of one configuration goes, from ONEDNN_VERBOSE."""
    engine = Engine(verbose=True, binary=args.binary)
    command = f"{args.what} {args.profile_arch} {args.batch} {args.size} {args.precision}"
    engine.ask(command)  # build and warm up
    engine.verbose_lines.clear()
    wall = 0.0
    for _ in range(args.steps):
        wall += engine.ask(command)[0]
    engine.close()
    groups, total = {}, 0.0
    for line in engine.verbose_lines:
        f = line.split(",")
        if len(f) < 8 or f[1] != "exec":
            continue
        ms = float(f[-1])
        kind, impl, prop = f[3], f[4], f[5]
        if kind == "reorder":
            # Which way: from our plain fp32 (abcd/ab/a) or back to it.
            src, dst = (d.split(":") for d in (f[6].split(" ")[0], f[6].split(" ")[-1]))
            prop = f"{src[0][4:]} {src[3]} -> {dst[0][4:]} {dst[3]}"
        key = (kind, prop, impl)
        g = groups.setdefault(key, [0, 0.0])
        g[0] += 1
        g[1] += ms
        total += ms
    wall_ms = 1e3 * wall
    print(f"{command}: {args.steps} step(s), wall {wall_ms / args.steps:.0f} ms per step, "
          f"oneDNN {total / args.steps:.0f} ms per step ({100 * total / wall_ms:.0f}%), "
          f"our own code (by subtraction) {(wall_ms - total) / args.steps:.0f} ms per step")
    print(f"{'ms/step':>9s} {'share':>6s} {'calls':>6s}  primitive / propagation or reorder / implementation")
    by_kind = {}
    for (kind, prop, impl), (n, ms) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
        print(f"{ms / args.steps:9.1f} {100 * ms / wall_ms:5.1f}% {n // args.steps:6d}  "
              f"{kind} / {prop} / {impl}")
    print("by primitive kind: " + ", ".join(f"{k} {v / args.steps:.0f} ms"
                                             for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])))


def main():
    if "--netlib" in sys.argv:  # PyTorch as Debian configures it, whatever its BLAS
        sys.argv.remove("--netlib")
        os.environ["CZ_BENCH_BLAS_SET"] = "1"
    use_openblas()
    if len(sys.argv) > 1 and sys.argv[1] == "torch-peak":
        return torch_peak(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("infer", "gan", "memory", "ab"):
        p = sub.add_parser(mode)
        p.add_argument("--arch", action="append", choices=sorted(SIZES),
                       help="a generator (repeatable; default: all three)")
        p.add_argument("--repeats", type=int, default=5)
        if mode == "memory":
            p.add_argument("--what", choices=("gan", "infer"), default="gan")
        if mode in ("infer", "ab"):
            p.add_argument("--batch", action="append", type=int, choices=(1, 8),
                           help="a batch size (repeatable; default: 1 and 8)")
        if mode == "ab":
            p.add_argument("--before", required=True,
                           help="another build's bench/models binary, run against this one")
            p.add_argument("--rounds", type=int, default=2,
                           help="fresh pairs of processes, each timed --repeats times")
    p = sub.add_parser("profile")
    p.add_argument("profile_arch", choices=sorted(SIZES))
    p.add_argument("batch", type=int)
    p.add_argument("size", type=int)
    p.add_argument("precision", choices=("fp32", "bf16"))
    p.add_argument("--what", choices=("gan", "infer"), default="gan")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--binary", default=BINARY,
                   help="the bench/models binary to profile (default: this build's)")
    args = parser.parse_args()
    if getattr(args, "arch", None) is None:
        args.arch = list(SIZES)
    if args.mode in ("infer", "ab") and args.batch is None:
        args.batch = [1, 8]
    if getattr(args, "repeats", 5) < 5:
        parser.error("at least 5 timed repeats")
    {"infer": bench_infer, "gan": bench_gan, "memory": bench_memory,
     "profile": bench_profile, "ab": bench_ab}[args.mode](args)


if __name__ == "__main__":
    main()
