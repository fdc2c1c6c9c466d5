#!/usr/bin/env python3
"""The table of bench/gpu_vs_torch.sh: netc's and PyTorch's seconds per
epoch (the last epoch each ran), their ratios (PyTorch / netc: above 1 netc
is faster), the NVRTC compile times and the targets as notes; also
bench.json with every number. Missing runs show as '-', never as a guess."""
import argparse
import json
import math
import os
import sys

# The targets of netc issue 9 (notes in the table, not pass/fail).
TARGETS = {
    ("W1", 128): 0.050,   # seconds per epoch
    ("W1", 32): 0.150,
}
BEST_RATIO_TARGET = 3.0   # netc at least 3x PyTorch at its best (W1)


def last(seconds):
    return seconds[-1] if seconds else None


def fmt(x, digits=3):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--netc", required=True)
    ap.add_argument("--torch", required=True)
    ap.add_argument("--nvrtc-cold", default="")
    ap.add_argument("--nvrtc-cached", default="")
    ap.add_argument("--nvrtc-note", default="")
    ap.add_argument("--dry", type=int, default=0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    netc = []
    if os.path.exists(a.netc):
        netc = [json.loads(line) for line in open(a.netc) if line.strip()]
    torch = {"runs": []}
    if os.path.exists(a.torch):
        torch = json.load(open(a.torch))
    rows = []
    for workload, batch in (("W1", 32), ("W1", 128), ("W6", 128)):
        n = next((r for r in netc if r["workload"] == workload and r["batch"] == batch), None)
        t = {m: next((r for r in torch["runs"] if r["workload"] == workload and r["batch"] == batch
                      and r["mode"] == m and "epoch_seconds" in r), None) for m in ("user", "best")}
        ns = last(n["epoch_seconds"]) if n else None
        us = last(t["user"]["epoch_seconds"]) if t["user"] else None
        bs = last(t["best"]["epoch_seconds"]) if t["best"] else None
        row = {"workload": workload, "batch": batch, "netc_s": ns, "torch_user_s": us, "torch_best_s": bs,
               "user_over_netc": us / ns if ns and us else None, "best_over_netc": bs / ns if ns and bs else None,
               "netc_epochs": n["epoch_seconds"] if n else None, "netc_images": n["images"] if n else None,
               "netc_test_accuracy": n["test_accuracy"] if n else None,
               "torch_user_epochs": t["user"]["epoch_seconds"] if t["user"] else None,
               "torch_best_epochs": t["best"]["epoch_seconds"] if t["best"] else None,
               "torch_best_method": t["best"]["method"] if t["best"] else None}
        notes = []
        target = TARGETS.get((workload, batch))
        if target is not None:
            met = ns is not None and ns < target
            notes.append(f"target < {target * 1000:.0f} ms: {'met' if met else 'missed' if ns else '-'}")
            row["target_s"], row["target_met"] = target, met if ns else None
        if workload == "W1":
            r = row["best_over_netc"]
            notes.append(f">= {BEST_RATIO_TARGET:.0f}x best: {'met' if r and r >= BEST_RATIO_TARGET else 'missed' if r else '-'}")
            row["ratio_target_met"] = (r >= BEST_RATIO_TARGET) if r else None
        row["notes"] = "; ".join(notes)
        rows.append(row)
    out = {"dry_run": bool(a.dry), "rows": rows,
           "nvrtc": {"cold_s": float(a.nvrtc_cold) if a.nvrtc_cold else None,
                     "cached_s": float(a.nvrtc_cached) if a.nvrtc_cached else None, "lines": a.nvrtc_note},
           "netc_device": netc[0]["device"] if netc else None,
           "torch": {k: v for k, v in torch.items() if k != "runs"}, "torch_runs": torch["runs"]}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    if a.dry:
        print("DRY RUN (emulator and CPU, few images): these numbers say nothing about a GPU")
    print("| workload | batch | netc s/epoch | torch user s/epoch | torch best s/epoch | user/netc | best/netc | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['batch']} | {fmt(r['netc_s'])} | {fmt(r['torch_user_s'])} | {fmt(r['torch_best_s'])} "
              f"| {fmt(r['user_over_netc'], 2)}x | {fmt(r['best_over_netc'], 2)}x | {r['notes']} |")
    best = next((r["torch_best_method"] for r in rows if r["torch_best_method"]), None)
    print(f"note: torch best = {best or '-'}")
    print(f"note: NVRTC cold {fmt(out['nvrtc']['cold_s'], 2)} s, cached {fmt(out['nvrtc']['cached_s'], 2)} s ({a.nvrtc_note})")
    print("target: W1 epoch under 50 ms at batch 128, under 150 ms at batch 32, >= 3x PyTorch at its best")
    complete = all(r["netc_s"] and r["torch_user_s"] and r["torch_best_s"] for r in rows)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
