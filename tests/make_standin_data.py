#!/usr/bin/env python3
"""Stand-in data in the real formats, for tests that check that programs run:
MNIST-format files cut from Fashion-MNIST (also copied as fashion-mnist/),
and CIFAR-10/100 binary batches of random pixels.
Usage: make_standin_data.py FASHION_MNIST_DIR OUT_DIR"""
import gzip, os, random, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(f"{dst}/mnist")
for split, count in (("train", 12100), ("t10k", 100)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        head = f.read(16)
        pixels = f.read(count * 784)
    with open(f"{dst}/mnist/{split}-images-idx3-ubyte", "wb") as f:
        f.write(head[:4] + struct.pack(">I", count) + head[8:] + pixels)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        head = f.read(8)
        labels = f.read(count)
    with open(f"{dst}/mnist/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(head[:4] + struct.pack(">I", count) + labels)
rng = random.Random(0)
def records(n, classes, cifar100):
    out = bytearray()
    for _ in range(n):
        label = rng.randrange(classes)
        out += bytes([label // 5, label]) if cifar100 else bytes([label])
        out += rng.randbytes(3072)
    return bytes(out)
os.makedirs(f"{dst}/cifar10")
for i in range(1, 6):
    open(f"{dst}/cifar10/data_batch_{i}.bin", "wb").write(records(2040, 10, False))
open(f"{dst}/cifar10/test_batch.bin", "wb").write(records(100, 10, False))
os.makedirs(f"{dst}/cifar100")
open(f"{dst}/cifar100/train.bin", "wb").write(records(200, 100, True))
open(f"{dst}/cifar100/test.bin", "wb").write(records(100, 100, True))
os.makedirs(f"{dst}/fashion-mnist")
for name in os.listdir(f"{dst}/mnist"):
    with open(f"{dst}/mnist/{name}", "rb") as f:
        open(f"{dst}/fashion-mnist/{name}", "wb").write(f.read())
