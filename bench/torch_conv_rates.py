"""PyTorch's own CPU convolutions on the shapes of bench/conv_rates.c (W6's
convolutions at 16 images, W5's at 13), one thread: forward, and the weight
gradient alone (aten::convolution_backward with only the weight's output), in
GMAC/s, best of 5 rounds. Not a test. W6's first convolution is timed with
zero padding (PyTorch pads by reflection in a separate pass before it).

    python3 bench/torch_conv_rates.py
"""
import time

import torch
import torch.nn.functional as F

SHAPES = [  # name, images, C, H (= W), O, k, padding
    ("W6 conv1", 16, 3, 32, 6, 5, 2),
    ("W6 conv2", 16, 6, 16, 16, 3, 1),
    ("W6 conv3", 16, 16, 8, 32, 3, 1),
    ("W5 conv1", 13, 1, 28, 6, 5, 2),
    ("W5 conv2", 13, 6, 14, 16, 5, 0),
]


def best_seconds(fn, reps):
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, oneDNN available: {torch.backends.mkldnn.is_available()}")
    for name, n, c, h, o, k, pad in SHAPES:
        x, w = torch.randn(n, c, h, h), torch.randn(o, c, k, k)
        y = F.conv2d(x, w, padding=pad)
        dy = torch.randn_like(y)
        macs = n * o * y.shape[2] * y.shape[3] * c * k * k
        reps = int(3e9 / macs) + 1
        forward = best_seconds(lambda: F.conv2d(x, w, padding=pad), reps)
        weights = best_seconds(
            lambda: torch.ops.aten.convolution_backward(
                dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [False, True, False]
            ),
            reps,
        )
        print(f"{name:9s} {n:3d} images  forward {macs / forward * 1e-9:6.1f} GMAC/s  "
              f"weight gradient {macs / weights * 1e-9:6.1f} GMAC/s")


if __name__ == "__main__":
    main()
