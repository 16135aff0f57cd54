#!/usr/bin/python3
"""Reference values for tests/test_metrics.c and tests/test_eval_cli.c.

Run with Debian's /usr/bin/python3 (python3-numpy, python3-skimage, which
brings PIL) from the repository root:
    /usr/bin/python3 tools/make_metric_fixtures.py
The outputs are committed so that `make test` needs no Python. Rerunning the
script reproduces them byte for byte (fixed seed).

It writes, under tests/fixtures/metrics/:
    real/NAME.png   ground-truth colour photos (small generated images)
    pred/NAME.png   "colourised" versions of them, paired by name
    gray/NAME.png   the grayscale baseline of each truth: its L* with
                    a* = b* = 0, through skimage's lab2rgb, rounded to 8 bits
    expected.json   every metric of docs/metrics.md for each pair (model and
                    grayscale baseline against the truth) and the set means

The metrics are computed here independently of the C code, with numpy and
skimage only, exactly as docs/metrics.md defines them:
    PSNR      skimage.metrics.peak_signal_noise_ratio, data_range 255, over
              R, G and B; capped at PSNR_CAP (identical images)
    SSIM      skimage.metrics.structural_similarity per RGB channel, mean of
              the three, gaussian_weights=True, sigma=1.5,
              use_sample_covariance=False, data_range=255 (Wang et al. 2004)
    Delta E   mean over pixels of skimage.color.deltaE_ciede2000 on
              skimage.color.rgb2lab of the two 8-bit images
    CF        Hasler & Suesstrunk colourfulness as DDColor computes it:
              rg = |R - G|, yb = |(R + G) / 2 - B| on 0..255,
              sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)
    AuC       Zhang et al. 2016: for thresholds t = 0, 1, ..., 150 the share
              of pixels whose a*b* error ||ab_pred - ab_true||_2 <= t; the
              mean over the 151 thresholds
Set means are plain means over images; delta_cf = |mean CF - mean CF_truth|.
"""
import json
import os

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SEED = 20240617  # fixed, so that rerunning the script changes nothing
OUT = "tests/fixtures/metrics"
PSNR_CAP = 100.0  # dB; docs/metrics.md
AUC_THRESHOLDS = np.arange(0, 151)  # Zhang et al.: 0..150 in steps of 1


def save_png(path, img):
    Image.fromarray(img).save(path, optimize=True)


def lab_to_u8(lab):
    return np.clip(np.round(lab2rgb(lab) * 255), 0, 255).astype(np.uint8)


def smooth_field(rng, h, w, k=4):
    """A smooth random field in [0, 1]: a few random low-frequency cosines."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    f = np.zeros((h, w))
    for _ in range(k):
        fy, fx = rng.uniform(0.02, 0.15, size=2)
        py, px = rng.uniform(0, 2 * np.pi, size=2)
        f += np.cos(2 * np.pi * fy * y + py) * np.cos(2 * np.pi * fx * x + px)
    return (f - f.min()) / (f.max() - f.min())


def make_pairs(rng):
    """(name, truth, pred) triples; pred may be gray (2-D) as a user's file may."""
    pairs = []

    # a: smooth colourful scene; the "model" got L right but rotated the hue
    # by 40 degrees and lost a little chroma, the typical colourisation error.
    h, w = 32, 40
    rgb = np.stack([smooth_field(rng, h, w) for _ in range(3)], -1)
    truth = np.round(rgb * 255).astype(np.uint8)
    lab = rgb2lab(truth)
    ang = np.deg2rad(40)
    a, b = lab[..., 1], lab[..., 2]
    lab_p = lab.copy()
    lab_p[..., 1] = 0.85 * (a * np.cos(ang) - b * np.sin(ang))
    lab_p[..., 2] = 0.85 * (a * np.sin(ang) + b * np.cos(ang))
    pairs.append(("a.png", truth, lab_to_u8(lab_p)))

    # b: saturated blocks over a gradient; the prediction is desaturated and
    # noisy, so CF drops and every metric moves.
    truth = np.zeros((h, w, 3), np.float64)
    truth[...] = np.linspace(30, 220, w)[None, :, None]
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        truth[y0:y0 + rng.integers(6, 14), x0:x0 + rng.integers(6, 16)] = \
            rng.integers(0, 256, size=3)
    truth = truth.astype(np.uint8)
    lab = rgb2lab(truth)
    lab[..., 1:] *= 0.5
    pred = lab_to_u8(lab).astype(np.int64) + rng.integers(-6, 7, size=(h, w, 3))
    pairs.append(("b.png", truth, np.clip(pred, 0, 255).astype(np.uint8)))

    # c: odd-sized texture; the "prediction" is an 8-bit gray PNG (a file
    # with one channel), compared as R = G = B.
    h, w = 29, 37
    base = smooth_field(rng, h, w)[..., None] * 200 + 20
    tex = rng.normal(0, 18, size=(h, w, 3)) + rng.uniform(-40, 40, size=3)
    truth = np.clip(np.round(base + tex), 0, 255).astype(np.uint8)
    lum = truth.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    pairs.append(("c.png", truth, np.clip(np.round(lum), 0, 255).astype(np.uint8)))
    return pairs


def as_rgb(img):
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def colourfulness(img):
    x = img.astype(np.float64)
    rg = np.abs(x[..., 0] - x[..., 1])
    yb = np.abs(0.5 * (x[..., 0] + x[..., 1]) - x[..., 2])
    std = np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2)
    mean = np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2)
    return float(std + 0.3 * mean)


def metrics(pred, truth):
    pred = as_rgb(pred)
    psnr = peak_signal_noise_ratio(truth, pred, data_range=255)
    ssim = structural_similarity(truth, pred, channel_axis=2,
                                 gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)
    lab_t, lab_p = rgb2lab(truth), rgb2lab(pred)
    de = deltaE_ciede2000(lab_t, lab_p)
    d_ab = np.linalg.norm(lab_p[..., 1:] - lab_t[..., 1:], axis=-1)
    auc = np.mean([np.mean(d_ab <= t) for t in AUC_THRESHOLDS])
    return {
        "psnr": float(min(psnr, PSNR_CAP)),
        "ssim": float(ssim),
        "delta_e": float(de.mean()),
        "cf": colourfulness(pred),
        "cf_truth": colourfulness(truth),
        "auc": float(auc),
    }


def set_means(rows):
    keys = rows[0].keys()
    m = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    m["delta_cf"] = abs(m["cf"] - m["cf_truth"])
    return m


def main():
    rng = np.random.default_rng(SEED)
    for sub in ("real", "pred", "gray"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    images = []
    for name, truth, pred in make_pairs(rng):
        lab = rgb2lab(truth)
        lab[..., 1:] = 0
        gray = lab_to_u8(lab)
        save_png(os.path.join(OUT, "real", name), truth)
        save_png(os.path.join(OUT, "pred", name), pred)
        save_png(os.path.join(OUT, "gray", name), gray)
        images.append({
            "name": name,
            "width": truth.shape[1],
            "height": truth.shape[0],
            "model": metrics(pred, truth),
            "gray": metrics(gray, truth),
        })
    expected = {
        "generator": "tools/make_metric_fixtures.py",
        "psnr_cap": PSNR_CAP,
        "images": images,
        "mean": {
            "model": set_means([im["model"] for im in images]),
            "gray": set_means([im["gray"] for im in images]),
        },
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
