#!/usr/bin/env python3
"""PyTorch side of the CPU benchmark: the W5 base case (models/lenet5_fashion.net at
its base parameters) trained on Fashion-MNIST in plain PyTorch.

Prints one machine-readable line:
  torch images_per_sec=... epoch_seconds=... batch=... threads=... train_loss=...
        test_acc=... torch_version=...

Only the training epochs are timed, without a DataLoader (bench/torch_bench_common.py).

Debian's python3-torch is installed for /usr/bin/python3; where `python3` is some
other interpreter, run this file with /usr/bin/python3.
"""
import gzip
import os

import torch_bench_common as common  # exits with a hint when torch is missing
import numpy as np
import torch
import torch.nn as nn

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def read_idx(path, magic, dims):
    """An IDX file (gzip-compressed or not) as a numpy uint8 array of the given rank."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * dims:
        raise ValueError(f"{path}: too short for an IDX header")
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise ValueError(f"{path}: magic {got}, expected {magic}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {shape}")
    return body.reshape(shape)


def find_file(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{data_dir}: no {stem}[.gz]")


def load_split(data_dir, prefix):
    """Images as float32 [N,1,28,28] in [0,1] (pixels/255, no normalization), labels int64."""
    images = read_idx(find_file(data_dir, f"{prefix}-images-idx3-ubyte"), IMAGE_MAGIC, 3)
    labels = read_idx(find_file(data_dir, f"{prefix}-labels-idx1-ubyte"), LABEL_MAGIC, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def lenet5_fashion():
    """W5 base case: the W1 LeNet-5 without log_softmax, xavier_uniform dense weights."""
    model = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, kernel_size=5), nn.Tanh(),
        nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, 10),
    )
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)  # biases keep PyTorch's default init
    return model


def main():
    args = common.arguments(__doc__.split("\n\n")[0], "/usr/share/datasets/fashion-mnist",
                            "folder with the four Fashion-MNIST IDX files (.gz or not)", batch=100, lr=0.001)
    generator = common.setup(args)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    if args.limit:
        x_train, y_train = x_train[:args.limit].contiguous(), y_train[:args.limit].contiguous()
    model = lenet5_fashion()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    common.train_and_report(args, model, optimizer, (x_train, y_train), (x_test, y_test), generator)


if __name__ == "__main__":
    main()
