#!/usr/bin/python3
"""Reference values for tests/test_lab.c, from skimage and PyTorch.

Run with Debian's /usr/bin/python3 (python3-skimage, python3-torch) from the
repository root:  /usr/bin/python3 tools/make_lab_fixtures.py
The outputs are committed so that `make test` needs no Python.

tests/fixtures/lab_grid.bin, all little-endian:
    char[8]  "CZLAB1\\0\\0"
    uint32   n_rgb, n_lab
    float32  rgb[n_rgb][3], rgb2lab(rgb)[n_rgb][3]
    float32  lab[n_lab][3], lab2rgb(lab)[n_lab][3]
The RGB inputs are a 17^3 grid of 8-bit values (0, 16, ..., 255, so 0 and 1
included), every 8-bit value as gray and on each primary alone, and 1000
random colours. The Lab inputs are a grid of L* x a* x b* that is mostly
outside the sRGB gamut, so lab2rgb's clipping (and its Z < 0 clip) is
exercised. skimage runs in float64 on the float32 inputs; the outputs are
rounded to float32.

tests/fixtures/resize_bilinear.bin, all little-endian:
    char[8]  "CZRSZ1\\0\\0"
    uint32   n_cases
    per case: int32 sw, sh, dw, dh; float32 src[sh][sw]; float32 dst[dh][dw]
with dst = F.interpolate(src, (dh, dw), mode='bilinear',
align_corners=False, antialias=False) in float32, for sizes that shrink by
at most 2x (where cz_resize_bilinear_f32 is pure bilinear).
"""
import struct
import warnings

import numpy as np
from skimage.color import lab2rgb, rgb2lab

SEED = 20240601  # fixed, so that rerunning the script changes nothing


def rgb_inputs(rng):
    codes = np.round(np.arange(17) * 255 / 16).astype(np.int64)
    grid = np.stack(np.meshgrid(codes, codes, codes, indexing="ij"), -1)
    grid = grid.reshape(-1, 3)
    ramp = np.arange(256)
    zero = np.zeros(256, dtype=np.int64)
    ramps = np.concatenate([
        np.stack([ramp, ramp, ramp], -1),
        np.stack([ramp, zero, zero], -1),
        np.stack([zero, ramp, zero], -1),
        np.stack([zero, zero, ramp], -1),
    ])
    coded = np.concatenate([grid, ramps]).astype(np.float32) / np.float32(255)
    rand = rng.random((1000, 3)).astype(np.float32)
    return np.concatenate([coded, rand]).astype(np.float32)


def lab_inputs():
    L = np.array([0, 1, 5, 8, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    ab = np.linspace(-128, 127, 17)
    grid = np.stack(np.meshgrid(L, ab, ab, indexing="ij"), -1)
    return grid.reshape(-1, 3).astype(np.float32)


def write_lab(path, rng):
    rgb = rgb_inputs(rng)
    lab = lab_inputs()
    lab_of_rgb = rgb2lab(rgb.astype(np.float64)[None]).astype(np.float32)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Color data out of range: Z < 0"
        rgb_of_lab = lab2rgb(lab.astype(np.float64)[None]).astype(np.float32)[0]
    with open(path, "wb") as f:
        f.write(b"CZLAB1\0\0")
        f.write(struct.pack("<II", len(rgb), len(lab)))
        for a in (rgb, lab_of_rgb, lab, rgb_of_lab):
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def write_resize(path, rng):
    import torch
    import torch.nn.functional as F

    cases = [(7, 5, 13, 11), (13, 11, 7, 6), (16, 16, 8, 8), (10, 9, 10, 9),
             (5, 8, 9, 4), (1, 1, 3, 2), (64, 3, 33, 5), (20, 20, 11, 37)]
    with open(path, "wb") as f:
        f.write(b"CZRSZ1\0\0")
        f.write(struct.pack("<I", len(cases)))
        for sw, sh, dw, dh in cases:
            src = rng.standard_normal((sh, sw)).astype(np.float32)
            dst = F.interpolate(torch.from_numpy(src)[None, None], size=(dh, dw),
                                mode="bilinear", align_corners=False,
                                antialias=False)[0, 0].numpy()
            f.write(struct.pack("<4i", sw, sh, dw, dh))
            f.write(src.astype("<f4").tobytes())
            f.write(np.ascontiguousarray(dst, dtype="<f4").tobytes())


def main():
    rng = np.random.default_rng(SEED)
    write_lab("tests/fixtures/lab_grid.bin", rng)
    write_resize("tests/fixtures/resize_bilinear.bin", rng)


if __name__ == "__main__":
    main()
