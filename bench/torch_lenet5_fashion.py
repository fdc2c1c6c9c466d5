#!/usr/bin/env python3
"""PyTorch side of the CPU benchmark: the W5 base case (models/lenet5_fashion.net at
its base parameters) trained on Fashion-MNIST in plain PyTorch.

Prints one machine-readable line:
  torch images_per_sec=... epoch_seconds=... batch=... threads=... train_loss=...
        test_acc=... torch_version=...

Only the training epochs are timed: reading the data and the evaluation are not.
The data set sits in memory as two tensors and each batch is taken with a slice of
a per-epoch permutation, so no DataLoader overhead is counted. That favours
PyTorch: a user's script would normally go through torchvision and a DataLoader.

Debian's python3-torch is installed for /usr/bin/python3; where `python3` is some
other interpreter, run this file with /usr/bin/python3.
"""
import argparse
import gzip
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    sys.exit(f"{sys.argv[0]}: {e} under {sys.executable}; try /usr/bin/python3 (Debian's python3-torch)")

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


def train_epoch(model, optimizer, loss_fn, x, y, batch, generator):
    """One shuffled epoch, written as a user would; returns the mean training loss."""
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    total = 0.0
    for start in range(0, n, batch):  # the last batch may be short, as DataLoader's default
        idx = order[start:start + batch]
        inputs, targets = x[idx], y[idx]
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * idx.numel()
    return total / n


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch):
        correct += (model(x[start:start + batch]).argmax(1) == y[start:start + batch]).sum().item()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="folder with the four Fashion-MNIST IDX files (.gz or not)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.batch < 1 or args.threads < 1 or args.epochs < 1 or args.limit < 0:
        ap.error("--batch, --threads and --epochs must be positive, --limit non-negative")

    # Before any parallel work, or PyTorch refuses to change the inter-op pool.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    if args.limit:
        x_train, y_train = x_train[:args.limit].contiguous(), y_train[:args.limit].contiguous()

    model = lenet5_fashion()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    seconds = 0.0
    train_loss = float("nan")
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, optimizer, loss_fn, x_train, y_train, args.batch, generator)
        seconds += time.perf_counter() - t0
    test_acc = accuracy(model, x_test, y_test)

    images = x_train.shape[0] * args.epochs
    print(f"torch images_per_sec={images / seconds:.1f} epoch_seconds={seconds / args.epochs:.3f} "
          f"batch={args.batch} threads={args.threads} train_loss={train_loss:.4f} "
          f"test_acc={test_acc:.4f} torch_version={torch.__version__}")


if __name__ == "__main__":
    main()
