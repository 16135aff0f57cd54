#!/usr/bin/python3
"""colorize end to end on a 12-megapixel JPEG: decode, network, upsample,
recombine, encode.

Times `build/release/colorize --model M photo.jpg -o out.jpg -v` as a whole
process (wall time from start to exit, model loading included) and, from its
-v lines, the photo's own part (load = decode + L*; colour = resize, network,
upsample, recombine; save = encode). fp32 and bf16 runs are interleaved;
the first run of each warms the page cache and is not counted.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/end_to_end.py [--repeats 5] [--arch resnet50-unet]
        [--precisions fp32,bf16] [--baseline OTHER_COLORIZE]

--baseline names another colorize binary (say one built in a `git worktree`
of an earlier revision): it runs on the same photo and model, interleaved
with ours in every repeat so that both meet the same machine load, and the
ratios baseline / ours of the medians are printed.

The photo: a 4000x3000 grayscale JPEG (quality 92), made with PIL as a
mosaic of 8x8 photos of ../shared/data/val at about their own resolution (a
real photo's detail at every pixel, so decoding costs what it does on a
scan), or a synthetic pattern without them. The model: random weights (bench/models `save`; with the ImageNet ResNet50
in cache/resnet50/ the encoder has those), or --model FILE. If colorize
cannot colour photos yet, says so and exits 1.
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
COLORIZE = os.path.join(ROOT, "build", "release", "colorize")
MODELS = os.path.join(ROOT, "build", "release", "bench", "models")
ENCODER = os.path.join(ROOT, "cache", "resnet50", "resnet50-keras-imagenet.safetensors")
PHOTOS = os.path.join(ROOT, "..", "shared", "data", "val")
WIDTH, HEIGHT, QUALITY = 4000, 3000, 92
TILES = 8  # photos per side of the mosaic: 500x375 each, about their own size
TARGET_SECONDS = 1.0
THREADS = 2
SIZES = {"unet": 256, "resnet50-paper": 224, "resnet50-unet": 224}


def make_photo(path, width=WIDTH, height=HEIGHT):
    """A mosaic of TILES x TILES real photos, each near its own resolution,
    so the JPEG has a scan's detail (and entropy) at every pixel."""
    from PIL import Image
    sources = sorted(glob.glob(os.path.join(PHOTOS, "*.jpg")))
    if sources:
        img = Image.new("L", (width, height))
        tw, th = -(-width // TILES), -(-height // TILES)
        for i in range(TILES * TILES):
            tile = Image.open(sources[i % len(sources)]).convert("L").resize((tw, th), Image.LANCZOS)
            img.paste(tile, ((i % TILES) * tw, (i // TILES) * th))
        origin = f"a mosaic of {min(TILES * TILES, len(sources))} photos of ../shared/data/val"
    else:
        img = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 100)
        origin = "a synthetic pattern"
    img.save(path, quality=QUALITY)
    return origin


def make_model(arch, path):
    args = [MODELS] + (["--encoder", ENCODER] if os.path.exists(ENCODER) else [])
    out = subprocess.run(args, input=f"save {arch} {SIZES[arch]} {path}\n", capture_output=True,
                         text=True).stdout
    if not out.startswith("ok"):
        sys.exit(f"bench/models could not write a {arch} model: {out.strip()}")


def run_once(model, photo, out, precision, colorize=COLORIZE):
    """Wall seconds, peak resident KiB, the -v stage times and stderr."""
    if os.path.exists(out):
        os.remove(out)
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    t0 = time.perf_counter()
    p = subprocess.Popen([colorize, "--model", model, photo, "-o", out, "-v", "--precision",
                          precision], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=env)
    stderr = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    ok = p.returncode == 0 and os.path.exists(out) and os.path.getsize(out) > 0
    m = re.search(r"load ([\d.]+) s, colour ([\d.]+) s, save ([\d.]+) s", stderr)
    stages = tuple(float(x) for x in m.groups()) if m else None
    return ok, seconds, usage.ru_maxrss, stages, stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arch", choices=sorted(SIZES), default="resnet50-unet")
    parser.add_argument("--model", help="a generator model file (default: random weights)")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="comma-separated, of fp32 and bf16 (default both)")
    parser.add_argument("--baseline", help="another colorize binary to time beside ours")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("at least 5 timed repeats")
    precisions = tuple(args.precisions.split(","))
    if not precisions or any(p not in ("fp32", "bf16") for p in precisions):
        parser.error("--precisions takes fp32, bf16 or both")
    binaries = [("ours", COLORIZE)]
    if args.baseline:
        if not os.access(args.baseline, os.X_OK):
            parser.error(f"--baseline {args.baseline} is not an executable")
        binaries.append(("baseline", os.path.abspath(args.baseline)))
    for binary, how in ((COLORIZE, "make"), (MODELS, "make bench")):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `{how}` first")

    with tempfile.TemporaryDirectory() as tmp:
        photo, out = os.path.join(tmp, "photo.jpg"), os.path.join(tmp, "out.jpg")
        origin = make_photo(photo)
        # The same photo at the network's size: its "colour" time is the
        # network's, so the 12-megapixel run's excess is the full-resolution
        # work (resize down, upsample, recombine).
        small = os.path.join(tmp, "small.jpg")
        make_photo(small, SIZES[args.arch], SIZES[args.arch])
        model = args.model
        if not model:
            model = os.path.join(tmp, args.arch + ".safetensors")
            make_model(args.arch, model)
        for name, colorize in binaries:
            ok, _, _, _, stderr = run_once(model, photo, out, precisions[0], colorize)
            if not ok:
                print(f"colorize ({name}) cannot colour photos yet:\n" + stderr.strip())
                return 1
        keys = [(name, p) for p in precisions for name, _ in binaries]
        samples = {k: [] for k in keys}
        network = {k: [] for k in keys}
        for repeat in range(args.repeats + 1):
            for precision in precisions:
                for name, colorize in binaries:
                    ok, seconds, peak, stages, stderr = run_once(model, photo, out, precision,
                                                                 colorize)
                    if not ok:
                        print(f"colorize ({name}) failed ({precision}):\n" + stderr.strip())
                        return 1
                    small_ok, _, _, small_stages, _ = run_once(model, small, out, precision,
                                                               colorize)
                    if repeat > 0:
                        samples[(name, precision)].append((seconds, peak, stages))
                        if small_ok and small_stages:
                            network[(name, precision)].append(small_stages[1])
        model_line = next((l for l in stderr.splitlines() if "parameters" in l), "")

    print(f"colorize end to end: {WIDTH}x{HEIGHT} grayscale JPEG ({origin}, {WIDTH * HEIGHT / 1e6:.0f} "
          f"megapixels), {os.path.basename(model)}, {THREADS} threads, {args.repeats} timed runs "
          f"after 1 warm-up; seconds as min/median; load average at the end {os.getloadavg()[0]:.1f}")
    if args.baseline:
        print(f"  baseline: {binaries[1][1]}, run in turn with ours in every repeat")
    if model_line:
        print("  " + model_line.strip())
    label = "precision" if not args.baseline else "run"
    print(f"{label:14s} {'whole command':>15s} {'photo only':>15s} {'load':>11s} "
          f"{'colour':>11s} {'save':>11s} {'peak MiB':>9s}")
    verdicts, medians = [], {}
    for key in keys:
        name, precision = key
        s = samples[key]
        cells = [[x[0] for x in s]]
        if all(x[2] for x in s):
            cells.append([sum(x[2]) for x in s])
            cells += [[x[2][i] for x in s] for i in range(3)]
        medians[key] = [statistics.median(c) for c in cells]
        text = " ".join(f"{min(c):7.2f}/{statistics.median(c):<7.2f}" for c in cells[:2])
        text += " " + " ".join(f"{min(c):5.2f}/{statistics.median(c):<5.2f}" for c in cells[2:])
        row = precision if not args.baseline else f"{precision} {name}"
        print(f"{row:14s} {text} {max(x[1] for x in s) / 1024:9.0f}")
        if name != "ours":
            continue
        for what, c in zip(("whole command", "photo only"), cells[:2]):
            med = statistics.median(c)
            verdicts.append(f"{precision} {what}: median {med:.2f} s, min {min(c):.2f} s, target < "
                            f"{TARGET_SECONDS:.0f} s: "
                            + ("holds" if med < TARGET_SECONDS else
                               "holds on the min only" if min(c) < TARGET_SECONDS else "MISSED"))
    for key in keys:
        c = network[key]
        if c:
            who = "" if not args.baseline else f" ({key[0]})"
            print(f"{key[1]}{who} colour time of the same photo at {SIZES[args.arch]}x"
                  f"{SIZES[args.arch]} (the network and little else): "
                  f"{min(c):.2f}/{statistics.median(c):.2f} s")
    if args.baseline:
        for precision in precisions:
            ours, base = medians[("ours", precision)], medians[("baseline", precision)]
            parts = [f"{what} {b / o:.2f}x" for what, b, o in
                     zip(("whole command", "photo only", "load", "colour", "save"), base, ours)
                     if o > 0]
            print(f"{precision} baseline / ours, medians: " + ", ".join(parts))
    print("photo only = load + colour + save from colorize -v (decode and L*; resize, network, "
          "upsample, recombine; encode); whole command adds process start and model loading")
    for line in verdicts:
        print("target: " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
