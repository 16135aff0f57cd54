#!/usr/bin/python3
"""Writes tests/fixtures/safetensors_reference.safetensors, a small model file
produced independently of colorize's C writer, so tests/test_safetensors.c can
prove that the C reader and the C fp16/bf16 conversions agree bit for bit with
numpy and PyTorch.

The `safetensors` package is not in Debian, so the format is written by hand
from the specification: u64 little-endian header length, a JSON header padded
with spaces to a multiple of 8, then the raw little-endian tensor data.

Tensors (all 1-D, N values):
  src           F32   inputs: rounding ties, subnormals, overflow, inf, nan
  src.f16       F16   numpy's float16(src)
  src.f16.f32   F32   numpy's float32(float16(src)), the exact widening
  src.bf16      BF16  torch's bfloat16(src)
  src.bf16.f32  F32   torch's float(bfloat16(src))
  grid          F32   shape [2, 3, 1, 1], values 0, 0.5, ..., 2.5

Usage:
  tools/make_safetensors_fixtures.py             rewrite the fixture
  tools/make_safetensors_fixtures.py --check F   read F (e.g. written by the
      C writer) with this script's reader and print its metadata and tensors
"""
import json
import struct
import sys

import numpy as np
import torch

OUT = "tests/fixtures/safetensors_reference.safetensors"
SEED = 20240611
N_RANDOM = 60


def inputs():
    f16_sub = 2.0 ** -24  # smallest f16 subnormal
    edge = [
        0.0, -0.0, 1.0, -1.0, 0.1, -1.0 / 3.0, np.pi,
        65504.0, 65519.99, 65520.0, -65520.0, 1e5, 3e38,
        float("inf"), float("-inf"), float("nan"),
        2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -11), f16_sub,
        f16_sub / 2, f16_sub / 2 * (1 + 2.0 ** -20), 1.5 * f16_sub,
        2.5 * f16_sub, -3.5 * f16_sub, 1e-8, 1e-45,
        1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,  # f16 ties: to even, down and up
        1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8,    # bf16 ties: down and up
        1 + 2.0 ** -8 + 2.0 ** -20,           # just above a bf16 tie
        float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny),
    ]
    rng = np.random.default_rng(SEED)
    rand = rng.standard_normal(N_RANDOM) * 10.0 ** rng.integers(-9, 6, N_RANDOM)
    return np.concatenate([np.array(edge, dtype=np.float32),
                           rand.astype(np.float32)])


def bf16_bits(t):
    return t.bfloat16().view(torch.int16).numpy().view(np.uint16)


def write(path, tensors, metadata):
    """tensors: list of (name, dtype string, shape, little-endian bytes),
    laid out in list order; the header lists them in reverse to show that
    readers must not depend on key order."""
    header, data, at = {"__metadata__": metadata}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [at, at + len(raw)]}
        data += raw
        at += len(raw)
    ordered = dict(reversed(list(header.items())))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read(path):
    """A minimal reader: returns (metadata, {name: float32 numpy array})."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[b:end]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {e['dtype']}")
        out[name] = a.reshape(e["shape"])
    return meta, out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        meta, tensors = read(sys.argv[2])
        print("metadata", json.dumps(meta, sort_keys=True))
        for name in sorted(tensors):
            a = tensors[name]
            print(name, list(a.shape), " ".join(repr(float(x)) for x in a.flat))
        return
    src = inputs()
    with np.errstate(over="ignore"):  # overflow to inf is under test
        f16 = src.astype(np.float16)
    t = torch.from_numpy(src)
    tensors = [
        ("src", "F32", src.shape, src.astype("<f4").tobytes()),
        ("src.f16", "F16", src.shape, f16.astype("<f2").tobytes()),
        ("src.f16.f32", "F32", src.shape,
         f16.astype(np.float32).astype("<f4").tobytes()),
        ("src.bf16", "BF16", src.shape, bf16_bits(t).astype("<u2").tobytes()),
        ("src.bf16.f32", "F32", src.shape,
         t.bfloat16().float().numpy().astype("<f4").tobytes()),
        ("grid", "F32", (2, 3, 1, 1),
         (np.arange(6, dtype=np.float32) * 0.5).astype("<f4").tobytes()),
    ]
    write(OUT, tensors, {"format": "pt", "arch": "reference",
                         "writer": "tools/make_safetensors_fixtures.py"})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
