#!/bin/bash
# GPU benchmark: seconds per training epoch, netc (--device cuda) against
# PyTorch on the same GPU, same model, batch and optimizer:
#   W1  models/lenet5_mnist.net  (LeNet-5 on MNIST, Adam 0.001; 60,000 images) at batch 32 and 128
#   W6  models/cifar_hw02.net    (CIFAR-10 HW02 ConvNet, Adam 0.0005; 40,000 images) at batch 128
# netc's time is its own epoch time (summary.json seconds_per_epoch: the
# training loop only, no data loading, no testing); PyTorch's comes from
# bench/torch_gpu_bench.py, as users write it (DataLoader) and at its best
# (data on the GPU, CUDA graphs: the JSON says which ran). Each side runs
# --epochs epochs (default 2) and the table shows the last, warm one.
# Also the NVRTC compile time of netc's kernels, cold (an empty
# XDG_CACHE_HOME) and cached, read from the device line the program prints.
# Prints a table (ratios = PyTorch seconds / netc seconds, so > 1 means netc
# is faster) with the targets as notes, and writes OUT/bench.json.
#
#   bench/gpu_vs_torch.sh [--netc PATH] [--data DIR] [--out DIR] [--python PY]
#                         [--libdir DIR] [--epochs N] [--deadline S]
#                         [--dry [--train-limit N]]
#
# --dry: no GPU. netc runs on the CUDA emulator (NETC_CUDA=emu) and PyTorch
# on the CPU, on --train-limit images (default 256), to check the script:
# the numbers mean nothing. --libdir: the libraries netc's programs link
# (tests/gpu/run.sh passes .gpukit's); used for them only, never for Python.
# --data: a root holding mnist/ and cifar10/ (scripts/get-data puts them
# there); default ./data. --out: default $TMPDIR/netc-bench-gpu.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
netc=$here/compiler/netc
[ -x "$netc" ] || netc=$here/.gpukit/build/compiler/netc
data=$here/data out=${TMPDIR:-/tmp}/netc-bench-gpu python=${PYTHON:-} libdir="" epochs=2 dry=0 train_limit="" deadline=600
while [ $# -gt 0 ]; do
    case $1 in
    --netc) netc=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --libdir) libdir=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    --dry) dry=1; shift ;;
    --train-limit) train_limit=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_vs_torch.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
    esac
done
end_at=$((SECONDS + deadline))
left() { echo $((end_at - SECONDS)); }
[ -x "$netc" ] || { echo "gpu_vs_torch.sh: no netc at $netc (--netc)" >&2; exit 1; }
if [ -z "$python" ]; then
    for p in /opt/torch/.venv/bin/python3 python3 /usr/bin/python3; do
        if "$p" -c 'import torch' 2>/dev/null; then python=$p; break; fi
    done
fi
mkdir -p "$out" || exit 1
rm -f "$out"/netc.jsonl "$out"/torch.json "$out"/bench.json
netenv=(env)
[ -n "$libdir" ] && netenv=(env "LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
if [ $dry = 1 ]; then
    export NETC_CUDA=emu
    train_limit=${train_limit:-256}
    epochs=1
    echo "DRY RUN: netc on the CUDA emulator, PyTorch on the CPU, $train_limit training images, $epochs epoch; the numbers mean nothing"
fi
limit_args=()
[ -n "$train_limit" ] && limit_args=(--train-limit "$train_limit")
test_args=()
[ $dry = 1 ] && test_args=(--test-limit 64)   # testing is not timed; on the emulator it is slow
status=0

# ---- netc -----------------------------------------------------------------
for w in lenet5_mnist cifar_hw02; do
    "${netenv[@]}" "$netc" "$here/models/$w.net" -o "$out/$w" >"$out/netc-$w.log" 2>&1 ||
        { cat "$out/netc-$w.log"; echo "netc could not compile models/$w.net" >&2; exit 1; }
done
kernels_line() { sed -n 's/.*kernels: \(.*\)/\1/p' "$1" | head -n 1 | sed 's/)$//'; }
seconds_of() { sed -n 's/.*\(compiled by NVRTC\|read from the cache\) in \([0-9.]*\) s.*/\2/p' "$1" | head -n 1; }
# NVRTC: cold (an empty cache), then cached, on a few images.
cache=$out/xdg-cache
rm -rf "$cache"
mkdir -p "$cache"
for pass in cold cached; do
    XDG_CACHE_HOME=$cache timeout "$(($(left) > 60 ? 60 : ($(left) > 5 ? $(left) : 5)))" "${netenv[@]}" "$out/lenet5_mnist" train \
        --device cuda --epochs 1 --train-limit 64 --test-limit 64 --data "$data" --out "$out/run-nvrtc-$pass" \
        >"$out/nvrtc-$pass.log" 2>&1 || { tail -5 "$out/nvrtc-$pass.log"; status=1; }
    echo "nvrtc $pass: $(kernels_line "$out/nvrtc-$pass.log")"
done
nvrtc_cold=$(seconds_of "$out/nvrtc-cold.log") nvrtc_cached=$(seconds_of "$out/nvrtc-cached.log")
nvrtc_cold_line=$(kernels_line "$out/nvrtc-cold.log") nvrtc_cached_line=$(kernels_line "$out/nvrtc-cached.log")

for run in lenet5_mnist:32 lenet5_mnist:128 cifar_hw02:128; do
    w=${run%:*} b=${run#*:}
    dir=$out/run-$w-$b
    rm -rf "$dir"
    if [ "$(left)" -lt 30 ]; then echo "netc $w batch $b: skipped (deadline)"; status=1; continue; fi
    XDG_CACHE_HOME=$cache timeout "$(($(left) > 150 ? 150 : $(left) - 20))" "${netenv[@]}" "$out/$w" train \
        --device cuda --epochs "$epochs" --batch "$b" --seed 0 --data "$data" --out "$dir" "${limit_args[@]}" "${test_args[@]}" \
        >"$out/netc-$w-$b.log" 2>&1
    rc=$?
    if [ $rc != 0 ] || [ ! -s "$dir/summary.json" ]; then
        tail -8 "$out/netc-$w-$b.log"; echo "netc $w batch $b: exit $rc"; status=1; continue
    fi
    "$python" - "$dir/summary.json" "$w" "$b" "$(grep -m1 '^device:' "$out/netc-$w-$b.log")" >>"$out/netc.jsonl" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({"workload": {"lenet5_mnist": "W1", "cifar_hw02": "W6"}[sys.argv[2]], "batch": int(sys.argv[3]),
                  "epoch_seconds": s["seconds_per_epoch"], "images": s["dataset"]["train_images"],
                  "test_accuracy": s["test_accuracy"], "device": sys.argv[4]}))
EOF
    echo "netc $w batch $b: epoch seconds $(tail -n 1 "$out/netc.jsonl" | sed 's/.*"epoch_seconds": \[\([^]]*\)\].*/\1/')"
done

# ---- PyTorch --------------------------------------------------------------
if [ -z "$python" ]; then
    echo "no Python with torch: the PyTorch side was not run"; status=1
elif [ "$(left)" -lt 30 ]; then
    echo "PyTorch skipped (deadline)"; status=1
else
    tdev=cuda targs=()
    [ $dry = 1 ] && tdev=cpu targs=(--threads "$(nproc)")
    PYTHONUNBUFFERED=1 timeout "$(($(left) - 10))" "$python" "$here/bench/torch_gpu_bench.py" --data "$data" \
        --device $tdev --epochs "$epochs" "${limit_args[@]}" "${targs[@]}" --json "$out/torch.json" 2>&1 |
        tee "$out/torch.log"
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

# ---- table and JSON -------------------------------------------------------
"$python" "$here/bench/gpu_bench_table.py" --netc "$out/netc.jsonl" --torch "$out/torch.json" \
    --nvrtc-cold "${nvrtc_cold:-}" --nvrtc-cached "${nvrtc_cached:-}" \
    --nvrtc-note "cold: ${nvrtc_cold_line:-?}; cached: ${nvrtc_cached_line:-?}" \
    --dry $dry --json "$out/bench.json" || status=1
exit $status
