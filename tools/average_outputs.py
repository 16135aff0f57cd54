#!/usr/bin/python3
"""Two colourisers' outputs averaged in CIELab, photo by photo.

    tools/average_outputs.py [--resize SIDE PHOTOS OUT] | A_DIR B_DIR OUT_DIR [--gain G] [--fade K]

With --resize it only writes PHOTOS' images resized to SIDE x SIDE (PIL,
bicubic) as PNG into OUT, for colouring at the size `colorize eval` scores.
Otherwise, for each PNG of A_DIR and the same name in B_DIR (two models'
`colorize -d` outputs of those photos), it keeps A's L*, averages the two
a*b*, fades the average by the two's hue agreement (|mean| / mean |each|)
to the power K (default 0: none), multiplies it by G (default 1), and
writes the sRGB result to OUT_DIR, for `colorize eval --pred OUT_DIR`.
models/README.md's two-model average comes from it. Debian's python3-numpy,
python3-skimage and python3-pil."""
import argparse
import os
import sys

import numpy as np
from PIL import Image
from skimage import color


def resize(side, photos, out):
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(photos)):
        image = Image.open(os.path.join(photos, name)).convert("RGB")
        stem = os.path.splitext(name)[0]
        image.resize((side, side), Image.BICUBIC).save(os.path.join(out, stem + ".png"))


def lab(path):
    return color.rgb2lab(np.asarray(Image.open(path).convert("RGB")) / 255.0)


def average(a_dir, b_dir, out, gain, fade):
    os.makedirs(out, exist_ok=True)
    for name in sorted(n for n in os.listdir(a_dir) if n.endswith(".png")):
        a, b = lab(os.path.join(a_dir, name)), lab(os.path.join(b_dir, name))
        mean = (a[..., 1:] + b[..., 1:]) / 2
        if fade > 0:
            length = (np.hypot(a[..., 1], a[..., 2]) + np.hypot(b[..., 1], b[..., 2])) / 2
            agreement = np.hypot(mean[..., 0], mean[..., 1]) / np.maximum(length, 1e-6)
            mean *= np.where(length > 1e-6, agreement, 1.0)[..., None] ** fade
        a[..., 1:] = mean * gain
        rgb = np.clip(color.lab2rgb(a), 0, 1)
        Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(os.path.join(out, name))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--resize", nargs=3, metavar=("SIDE", "PHOTOS", "OUT"))
    parser.add_argument("dirs", nargs="*", metavar="A_DIR B_DIR OUT_DIR")
    parser.add_argument("--gain", type=float, default=1.0)
    parser.add_argument("--fade", type=float, default=0.0)
    args = parser.parse_args()
    if args.resize:
        resize(int(args.resize[0]), args.resize[1], args.resize[2])
    elif len(args.dirs) == 3:
        average(*args.dirs, args.gain, args.fade)
    else:
        parser.print_usage(sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
