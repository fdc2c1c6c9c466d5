"""What the PyTorch sides of bench/cpu_vs_torch.sh share: the command line, the timed
training epochs and the one machine-readable result line.

Only the training epochs are timed: reading the data and the evaluation are not.
The data set sits in memory as two tensors and each batch is taken with a slice of
a per-epoch permutation, so no DataLoader overhead is counted. That favours
PyTorch: a user's script would normally go through torchvision and a DataLoader.
"""
import argparse
import sys
import time

try:
    import numpy  # noqa: F401 (the peers' data code needs it)
    import torch
except ImportError as e:
    sys.exit(f"{sys.argv[0]}: {e} under {sys.executable}; try /usr/bin/python3 (Debian's python3-torch)")


def arguments(description, data_default, data_help, batch, lr, extra=None):
    """The options every peer takes (--batch, --threads, --epochs, --limit, --lr, --seed,
    --data); extra(parser) adds a script's own. Returns the parsed, checked arguments."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=data_default, help=data_help)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0, help="seed of PyTorch's init and shuffling")
    if extra:
        extra(ap)
    args = ap.parse_args()
    if args.batch < 1 or args.threads < 1 or args.epochs < 1 or args.limit < 0:
        ap.error("--batch, --threads and --epochs must be positive, --limit non-negative")
    return args


def setup(args):
    """Threads and seeds; returns the shuffling generator. Call before any parallel work,
    or PyTorch refuses to change the inter-op pool."""
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch.Generator().manual_seed(args.seed)


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


def train_and_report(args, model, optimizer, train, test, generator):
    """Trains args.epochs epochs on train = (x, y), timing only them, tests on test and
    prints the result line bench/cpu_vs_torch.sh reads (key=value pairs)."""
    x_train, y_train = train
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = 0.0
    train_loss = float("nan")
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, optimizer, loss_fn, x_train, y_train, args.batch, generator)
        seconds += time.perf_counter() - t0
    test_acc = accuracy(model, *test)
    images = x_train.shape[0] * args.epochs
    print(f"torch images_per_sec={images / seconds:.1f} epoch_seconds={seconds / args.epochs:.3f} "
          f"batch={args.batch} threads={args.threads} train_loss={train_loss:.4f} "
          f"test_acc={test_acc:.4f} torch_version={torch.__version__}")
