#!/usr/bin/env python3
"""Seconds per training epoch of W1 (LeNet-5, MNIST) and W6 (the CIFAR-10
HW02 ConvNet) in PyTorch, for bench/gpu_vs_torch.sh, in two forms:

  user  as users write it (WORKLOADS.md W1/W6): a DataLoader (shuffle=True)
        over CPU tensors, every batch moved to the device, loss.item()
        every step for the running loss
  best  data on the device, a shuffled index per epoch, no DataLoader; on a
        GPU the whole step (forward, backward, Adam with capturable=True) is
        one CUDA graph replayed per full batch (the last partial batch runs
        eagerly), cudnn.benchmark on; where graph capture fails, the same
        loop eagerly (the JSON says which ran)

Same model, batch, optimizer and loss as models/lenet5_mnist.net and
models/cifar_hw02.net. W6 trains on 40,000 CIFAR-10 images (its
validation split keeps 10,000 of the 50,000 out), W1 on 60,000 MNIST images.
Epoch time excludes data loading: torch.cuda.synchronize() before and after
the epoch's loop. Writes one JSON object (--json) and prints one line per run.
"""
import argparse
import gzip
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10), nn.LogSoftmax(dim=1))


def hw02():
    def block(cin, cout, k, pad, mode):
        return [nn.Conv2d(cin, cout, k, padding=pad, padding_mode=mode, bias=True),
                nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(
        *block(3, 6, 5, 2, "reflect"), *block(6, 16, 3, 1, "zeros"), *block(16, 32, 3, 1, "zeros"),
        nn.Flatten(), nn.Linear(512, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


WORKLOADS = {
    # name: (model, lr, loss on the model's output)
    "W1": (lenet5, 0.001, F.nll_loss),
    "W6": (hw02, 0.0005, F.cross_entropy),
}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load_mnist(root, limit):
    x = read_idx(os.path.join(root, "mnist", "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, "mnist", "train-labels-idx1-ubyte.gz"))
    if limit:
        x, y = x[:limit], y[:limit]
    return (torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1),
            torch.from_numpy(y.astype(np.int64)))


def load_cifar10(root, count):
    """count training images of the JPEG folders (train/<class>/*.jpg), a seeded random choice."""
    from PIL import Image
    base = os.path.join(root, "cifar10", "train")
    classes = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    files = [(os.path.join(base, c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(base, c)))]
    random.Random(0).shuffle(files)
    files = files[:count]
    x = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for k, (path, _) in enumerate(files):
        with Image.open(path) as im:
            x[k] = np.asarray(im.convert("RGB"))
    y = np.array([label for _, label in files], dtype=np.int64)
    return (torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0).contiguous(), torch.from_numpy(y))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def epochs_user(make, lr, loss_fn, x, y, batch, epochs, device):
    from torch.utils.data import DataLoader, TensorDataset
    torch.backends.cudnn.benchmark = False   # the default users run with (best mode turns it on)
    model = make().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    times, losses = [], []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item() * xb.shape[0]
        sync(device)
        times.append(time.perf_counter() - t0)
        losses.append(running / len(x))
    return times, losses, "DataLoader(shuffle=True) over CPU tensors, .to(device) and loss.item() every step"


def epochs_best(make, lr, loss_fn, x, y, batch, epochs, device):
    model = make().to(device)
    xd, yd = x.to(device), y.to(device)
    n = len(xd)
    full = n // batch
    gpu = device.type == "cuda"
    opt = torch.optim.Adam(model.parameters(), lr=lr, capturable=gpu)
    graph, method, why = None, "eager, data on the device, no DataLoader", ""
    if gpu:
        torch.backends.cudnn.benchmark = True
        static_x = xd[:batch].clone()
        static_y = yd[:batch].clone()
        total = torch.zeros((), device=device)
        try:
            # Warm-up on a side stream (allocations, cuDNN autotuning, Adam state), then capture.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(model(static_x), static_y).backward()
                    opt.step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                static_loss = loss_fn(model(static_x), static_y)
                static_loss.backward()
                opt.step()
                total += static_loss.detach() * batch
            method = "CUDA graph of the whole step (forward, backward, Adam capturable), data on the GPU, no DataLoader"
        except Exception as e:  # capture is not available everywhere: fall back, and say so
            graph, why = None, f"CUDA graph capture failed ({type(e).__name__}: {e}); "
        # The warm-up steps trained the model: start the timed epochs from fresh weights and state.
        fresh = make().to(device)
        with torch.no_grad():
            for p, q in zip(model.parameters(), fresh.parameters()):
                p.copy_(q)
            for b, c in zip(model.buffers(), fresh.buffers()):
                b.copy_(c)
            for state in opt.state.values():
                for k, v in state.items():
                    if torch.is_tensor(v):
                        v.zero_()
    times, losses = [], []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        if graph is not None:
            total.zero_()
            for i in range(full):
                idx = perm[i * batch:(i + 1) * batch]
                torch.index_select(xd, 0, idx, out=static_x)
                torch.index_select(yd, 0, idx, out=static_y)
                graph.replay()
            running = total
            start = full * batch
        else:
            running = torch.zeros((), device=device)
            start = 0
        for i in range(start, n, batch):  # eager: every batch, or the last partial one
            idx = perm[i:i + batch]
            # After a capture the gradients live in the graph's memory: zero them there.
            opt.zero_grad(set_to_none=graph is None)
            loss = loss_fn(model(xd[idx]), yd[idx])
            loss.backward()
            opt.step()
            running = running + loss.detach() * len(idx)
        sync(device)
        times.append(time.perf_counter() - t0)
        losses.append(float(running) / n)
    return times, losses, why + method


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="data root holding mnist/ and cifar10/ (scripts/get-data)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", default="W1:32,W1:128,W6:128", help="WORKLOAD:BATCH,...")
    ap.add_argument("--modes", default="user,best")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (dry runs)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    out = {"torch": torch.__version__, "device": a.device, "epochs": a.epochs, "train_limit": a.train_limit,
           "runs": []}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
        out["cuda"] = torch.version.cuda
        out["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        out["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    data = {}
    runs = [(r.split(":")[0], int(r.split(":")[1])) for r in a.runs.split(",") if r]
    for workload, batch in runs:
        if workload not in data:
            t0 = time.perf_counter()
            if workload == "W1":
                data[workload] = load_mnist(a.data, a.train_limit)
            else:
                data[workload] = load_cifar10(a.data, a.train_limit or 40000)
            print(f"loaded {workload}: {len(data[workload][0])} images in {time.perf_counter() - t0:.1f} s", flush=True)
        x, y = data[workload]
        make, lr, loss_fn = WORKLOADS[workload]
        for mode in a.modes.split(","):
            torch.manual_seed(0)
            fn = epochs_user if mode == "user" else epochs_best
            try:
                times, losses, how = fn(make, lr, loss_fn, x, y, batch, a.epochs, device)
                rec = {"workload": workload, "batch": batch, "mode": mode, "images": len(x),
                       "epoch_seconds": times, "train_loss": losses, "method": how}
            except Exception as e:
                rec = {"workload": workload, "batch": batch, "mode": mode, "error": f"{type(e).__name__}: {e}"}
            out["runs"].append(rec)
            shown = ", ".join(f"{t:.3f}" for t in rec.get("epoch_seconds", [])) or rec.get("error")
            print(f"torch {workload} batch {batch} {mode}: epoch seconds {shown}", flush=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    return 0 if all("error" not in r for r in out["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
