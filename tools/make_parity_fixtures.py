#!/usr/bin/python3
"""Writes the PyTorch parity fixtures for tests/test_parity.c.

Each small network below is built in PyTorch 1.13 with random weights, run
forward, backward, and through three Adam steps; inputs, weights, outputs,
gradients and the weights after the steps go into one safetensors file per
network under tests/fixtures/parity/. The C test builds the same networks on
our engine, loads the same weights, and must reproduce every tensor, so
`make test` needs no Python.

Run with Debian's interpreter (it has torch and numpy):
    /usr/bin/python3 tools/make_parity_fixtures.py
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "parity")
ADAM = dict(lr=1e-2, betas=(0.5, 0.999), eps=1e-8)
STEPS = 3


class Stem(nn.Module):
    """ResNet stem: conv 7x7/2 - BN - ReLU - max-pool 3x3/2."""

    def __init__(self):
        super().__init__()
        # No bias before BN: its true gradient is zero, so its Adam update
        # would follow rounding noise and no two libraries could agree.
        self.conv1 = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)


class Bottleneck(nn.Module):
    """ResNet50 downsampling bottleneck with its projection shortcut."""

    def __init__(self, cin=8, mid=4, cout=16, stride=2):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample_conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.downsample_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.downsample_bn(self.downsample_conv(x)))


class UNetLevel(nn.Module):
    """One pix2pix U-Net level: down conv, inner conv, transposed conv up,
    skip concatenation, then an output conv and tanh."""

    def __init__(self, cin=3, inner=8):
        super().__init__()
        self.down = nn.Conv2d(cin, inner, 4, stride=2, padding=1, bias=False)
        self.down_bn = nn.BatchNorm2d(inner)
        self.up = nn.ConvTranspose2d(inner, cin, 4, stride=2, padding=1, bias=False)
        self.up_bn = nn.BatchNorm2d(cin)
        self.out = nn.Conv2d(2 * cin, 2, 3, padding=1, bias=True)

    def forward(self, x):
        d = F.leaky_relu(self.down_bn(self.down(x)), 0.2)
        u = self.up_bn(self.up(F.relu(d)))
        return torch.tanh(self.out(torch.cat([x, u], 1)))


class PatchGAN(nn.Module):
    """A reduced PatchGAN: C8 (no norm) - C16 - C32 (stride 1) - 1 logit map."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 4, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.c3 = nn.Conv2d(16, 32, 4, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.c4 = nn.Conv2d(32, 1, 4, stride=1, padding=1)

    def forward(self, x):
        x = F.leaky_relu(self.c1(x), 0.2)
        x = F.leaky_relu(self.bn2(self.c2(x)), 0.2)
        x = F.leaky_relu(self.bn3(self.c3(x)), 0.2)
        return self.c4(x)


class Head(nn.Module):
    """The remaining ops: both upsamplings, sigmoid, global pooling, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = torch.sigmoid(self.conv(x))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# name: (module, input shape, loss, input needs grad, weight decay)
NETS = {
    "stem": (Stem, (2, 3, 21, 19), "mse", False, 0.0),
    "bottleneck": (Bottleneck, (2, 8, 9, 11), "mse", True, 1e-2),
    "unet_level": (UNetLevel, (2, 3, 16, 12), "l1", False, 0.0),
    "patchgan": (PatchGAN, (2, 3, 32, 32), "bce", True, 0.0),
    "head": (Head, (3, 4, 5, 7), "mse", True, 0.0),
}


def loss_fn(kind, out, target):
    if kind == "mse":
        return F.mse_loss(out, target)
    if kind == "l1":
        return F.l1_loss(out, target)
    return F.binary_cross_entropy_with_logits(out, target)


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def make(name, seed):
    cls, shape, kind, input_grad, weight_decay = NETS[name]
    torch.manual_seed(seed)
    net = cls().train()
    with torch.no_grad():
        for p in net.parameters():  # wider than the defaults, to exercise every op
            p.uniform_(-0.5, 0.5)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                # Scales near 1 keep the following ReLUs half open: a ReLU
                # that passes everything makes the next BN cancel this BN's
                # shift, leaving a gradient of pure rounding noise.
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(shape).requires_grad_(input_grad)
    with torch.no_grad():  # eval mode leaves the running statistics alone
        out_shape = net.eval()(x).shape
    net.train()
    target = torch.rand(out_shape) if kind == "bce" else torch.randn(out_shape) * 0.5
    if kind == "bce":  # smoothed and noisy labels, as the GAN uses them
        target = 0.7 + 0.3 * target

    fixture = {"input": x.detach().numpy(), "target": target.numpy()}
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    for k, v in state.items():
        fixture["param." + k] = v.detach().numpy().copy()

    opt = torch.optim.Adam(net.parameters(), weight_decay=weight_decay, **ADAM)
    for step in range(STEPS):
        opt.zero_grad()
        if x.grad is not None:
            x.grad = None
        out = net(x)
        loss = loss_fn(kind, out, target)
        loss.backward()
        if step == 0:
            fixture["output"] = out.detach().numpy()
            fixture["loss"] = loss.detach().numpy().reshape(1)
            if input_grad:
                fixture["grad.input"] = x.grad.numpy()
            for k, p in net.named_parameters():
                fixture["grad." + k] = p.grad.numpy().copy()
        opt.step()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    for k, v in state.items():
        fixture["after." + k] = v.detach().numpy().copy()

    metadata = {"net": name, "loss": kind, "lr": repr(ADAM["lr"]),
                "beta1": repr(ADAM["betas"][0]), "beta2": repr(ADAM["betas"][1]),
                "eps": repr(ADAM["eps"]), "weight_decay": repr(weight_decay),
                "steps": str(STEPS), "torch": torch.__version__}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    write_safetensors(path, fixture, metadata)
    return path


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    for i, name in enumerate(NETS):
        path = make(name, 100 + i)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    sys.exit(main())
