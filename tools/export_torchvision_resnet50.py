#!/usr/bin/python3
"""Converts a torchvision ResNet50 state_dict to a colorize "resnet50" model.

    /usr/bin/python3 tools/export_torchvision_resnet50.py resnet50.pth OUT.safetensors

The input is what torch.save(torchvision.models.resnet50(...).state_dict())
writes (torchvision itself is not needed). colorize's torchvision layout uses
the same names and shapes, so the tensors are written as they are, less
BatchNorm's num_batches_tracked counters; the metadata names the
architecture. The model then serves as `colorize classify --model` and as a
generator's encoder (encoder_layout "torchvision": RGB input normalised by
the ImageNet mean and std, stride on the 3x3 convs, BatchNorm eps 1e-5).
"""
import json
import struct
import sys

import numpy as np
import torch


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    state = torch.load(sys.argv[1], map_location="cpu")
    if "state_dict" in state:
        state = state["state_dict"]
    tensors = {k: v.float().numpy() for k, v in state.items()
               if not k.endswith("num_batches_tracked")}
    if "conv1.weight" not in tensors or "conv1.bias" in tensors:
        sys.exit(f"{sys.argv[1]}: not a torchvision ResNet50 state_dict")
    classes = tensors["fc.weight"].shape[0]
    width = tensors["conv1.weight"].shape[0]
    meta = {"format": "colorize-model-1", "arch": "resnet50", "size": "224",
            "encoder_layout": "torchvision", "encoder_width": str(width),
            "classes": str(classes), "source": f"torchvision state_dict {sys.argv[1]}"}
    header = {"__metadata__": meta}
    offset, blobs = 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(sys.argv[2], "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    print(f"{sys.argv[2]}: {len(tensors)} tensors, {classes} classes")


if __name__ == "__main__":
    main()
