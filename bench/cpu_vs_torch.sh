#!/bin/bash
# CPU benchmark: one training epoch of a workload in netc and the same model in
# PyTorch on this machine, same batch, threads and training images. Prints
# images/second, GFLOP/s and the share of the cores' peak for each side and
# netc's ratio to each PyTorch. Not a test: run it by hand on a quiet machine.
#
#   bench/cpu_vs_torch.sh [--workload "w5 w6"] [--batches "32 100"] [--threads "1 2"]
#                         [--epochs N] [--repeat N] [--train-limit N] [--cifar-data DIR]
#                         [--venv DIR] [--no-system]
#
# Workloads (--workload, default w5; "w5 w6" measures both in one run):
#   w5  models/lenet5_fashion.net (W5 base case: LeNet-5, tanh, avgpool, Adam 0.001)
#       on Fashion-MNIST (scripts/install-deps), peer bench/torch_lenet5_fashion.py;
#       batches "32 100" unless --batches is given.
#   w6  models/cifar_hw02.net (the CIFAR-10 HW02 ConvNet: conv-BatchNorm-relu-maxpool x3,
#       dense 120/84/10, Adam 0.0005) on CIFAR-10, peer bench/torch_cifar_hw02.py; batch
#       128 unless --batches is given. --cifar-data DIR: where CIFAR-10 is (DIR, DIR/cifar10
#       or DIR/cifar-10; default $NETC_DATA, else data/ in this tree), made by
#       `scripts/get-data --offline cifar10 DIR`. A JPEG folder (the shared copy) is first
#       converted to the official binary layout in a temporary folder, decoded once by a
#       Python with Pillow, so netc and every peer read the same bytes. Both sides train on
#       netc's 40,000 training images (the model's validation split, drawn from netc's seed,
#       which the peer recomputes), and --train-limit N on the first N of those.
#
# The PyTorch peers, each run back to back with netc in the same loop:
#   system   Debian's python3-torch (1.13) under /usr/bin/python3, or $PYTHON;
#            left out with --no-system, or when it has no torch and --venv is given.
#   venv     with --venv DIR: current PyTorch from PyPI in a virtual environment
#            at DIR, created (python3 -m venv; pip install torch numpy) when DIR
#            has no torch yet. PyPI's Linux wheel is the CUDA build (about 0.5 GB,
#            plus some GB of NVIDIA libraries it depends on); it runs on the CPU
#            here like any other. Set VENV_PYTHON to pick the interpreter.
#
# With --repeat N every side runs N times and the best images/second counts
# (the least disturbed run on a shared machine); "all runs" lines show the spread.
# --train-limit N trains on the first N images only (both sides), for a quick run.
#
# FLOP convention: FLOP per training image = 2 (a multiply-add is two FLOP) x 3
# (the forward GEMM and the two backward ones, input and weight gradients) x the
# forward multiply-adds of the conv and dense layers, which netc --print-shapes
# computes ("multiply-adds per sample"). It leaves out BatchNorm, activations,
# pooling, the loss and the optimizer step, and counts the first layer's input
# gradient, which neither side computes: a nominal figure, the same for every side.
# Peak: cores (physical, lscpu) x 2 FMA units x SIMD floats (16 with avx512f in
# /proc/cpuinfo's flags, 8 with avx2, else 4) x 2 FLOP per FMA x clock (lscpu's
# "CPU max MHz", else /proc/cpuinfo's "cpu MHz"); the share printed is of the peak
# of the cores a row may use (min(threads, cores)); the script prints the derivation.
#
# Needs a built tree (compiler/netc, runtime/libnetrt.a) configured WITHOUT
# --enable-sanitizers, this source tree's own or an out-of-tree build named by
# --build DIR, and the workloads' data sets.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 [--workload \"w5 w6\"] [--batches \"32 100\"] [--threads \"1 2\"] [--epochs N] [--repeat N] [--train-limit N] [--cifar-data DIR] [--venv DIR] [--no-system] [--build DIR]"
workloads=w5
batches=""
threads_list=$(nproc)
epochs=1
repeat=1
limit=0
cifar_data=${NETC_DATA:-$here/data}
venv=""
use_system=1
build=$here
while [ $# -gt 0 ]; do
    case $1 in
    --workload) workloads=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --train-limit) limit=$2; shift 2 ;;
    --cifar-data) cifar_data=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --no-system) use_system=0; shift ;;
    --build) build=$(cd "$2" 2> /dev/null && pwd) || { echo "$0: no build folder '$2'" >&2; exit 2; }; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
for w in $workloads; do
    case $w in w5 | w6) ;; *) echo "$0: unknown workload '$w' (w5, w6)" >&2; echo "$usage" >&2; exit 2 ;; esac
done
netc=$build/compiler/netc
[ -x "$netc" ] || { echo "no $netc: build netc first (./bootstrap && ./configure && make), or name the build with --build DIR" >&2; exit 1; }
if grep -q -- '-fsanitize' "$build/config.log" 2> /dev/null && grep -q 'enable_sanitizers=yes' "$build/config.log"; then
    echo "warning: this tree is built with sanitizers; figures will be far too slow" >&2
fi

# The peers: parallel arrays of a label and an interpreter.
peer_names=() peer_pythons=()
has_torch() { "$1" -c 'import torch, numpy' 2> /dev/null; }
torch_version() { "$1" -c 'import torch; print(torch.__version__)'; }
# Debian's python3-torch lives in the system Python, which may not be the first python3 on PATH.
system_python=${PYTHON:-/usr/bin/python3}
if [ "$use_system" = 1 ]; then
    if has_torch "$system_python"; then
        peer_names+=("system") peer_pythons+=("$system_python")
    elif [ -z "$venv" ]; then
        echo "PyTorch missing for $system_python: apt-get install python3-torch, or use --venv DIR" >&2
        exit 1
    else
        echo "note: no PyTorch for $system_python; comparing with the venv only" >&2
    fi
fi
if [ -n "$venv" ]; then
    if ! has_torch "$venv/bin/python"; then
        echo "creating $venv with current PyTorch from PyPI (a few GB; minutes)" >&2
        "${VENV_PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet torch numpy
        has_torch "$venv/bin/python" || { echo "$venv: torch still not importable" >&2; exit 1; }
    fi
    peer_names+=("venv") peer_pythons+=("$venv/bin/python")
fi
[ ${#peer_names[@]} -gt 0 ] || { echo "no PyTorch to compare with (--no-system without --venv)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- the machine's peak (see the header for the formula) ----
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case " $flags " in
*" avx512f "*) simd=16 simd_why="avx512f" ;;
*" avx2 "*) simd=8 simd_why="avx2, no avx512f" ;;
*) simd=4 simd_why="neither avx512f nor avx2" ;;
esac
cores=$(lscpu -p=core,socket 2> /dev/null | grep -v '^#' | sort -u | wc -l)
cores_why="physical, lscpu"
[ "$cores" -gt 0 ] || { cores=$(nproc); cores_why="nproc"; }
mhz=$(lscpu 2> /dev/null | sed -n 's/^CPU max MHz: *\([0-9.]*\).*/\1/p')
mhz_why="lscpu's CPU max MHz"
if [ -z "$mhz" ] || awk -v m="$mhz" 'BEGIN { exit !(m <= 0) }'; then
    mhz=$(sed -n 's/^cpu MHz[[:space:]]*: *\([0-9.]*\).*/\1/p' /proc/cpuinfo | head -1)
    mhz_why="/proc/cpuinfo's cpu MHz: lscpu has no max MHz"
fi
core_peak=$(awk -v s="$simd" -v m="$mhz" 'BEGIN { printf "%.1f", 2 * s * 2 * m / 1000 }')

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "peak: $cores cores ($cores_why) x 2 FMA units x $simd floats ($simd_why) x 2 FLOP x $mhz MHz ($mhz_why)" \
    "= $(awk -v c="$cores" -v p="$core_peak" 'BEGIN { printf "%.1f", c * p }') GFLOP/s ($core_peak per core)"
echo "GFLOP/s: images/s x FLOP per training image (2 x 3 x forward multiply-adds); %peak: of the peak of min(threads, $cores) cores"
echo "$("$netc" --version 2> /dev/null | head -1), epochs $epochs, train images: ${limit/#0/all}"
# What runs netc's layers (runtime/cpu/isa.h) and which OpenBLAS kernels its dense layers get.
if [ "${NETC_CPU_KERNELS:-}" = generic ]; then kernels="im2col + BLAS (NETC_CPU_KERNELS=generic)"
elif grep -qw avx512f /proc/cpuinfo; then kernels="AVX-512 direct convolutions"
else kernels="im2col + BLAS (no AVX-512)"; fi
echo "netc CPU kernels: $kernels; OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-unset (OpenBLAS picks its kernels for this CPU)}"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every side)"
for i in "${!peer_names[@]}"; do
    echo "peer ${peer_names[$i]}: torch $(torch_version "${peer_pythons[$i]}") under ${peer_pythons[$i]} ($("${peer_pythons[$i]}" --version 2>&1))"
done
limit_args=() torch_limit=()
if [ "$limit" -gt 0 ]; then limit_args=(--train-limit "$limit") torch_limit=(--limit "$limit"); fi

best() { tr ' ' '\n' | sed '/^$/d' | sort -g | tail -1; }
field() { sed -n "s/.*$1=\\([0-9.e+-]*\\).*/\\1/p"; }
# GFLOP/s and its share of a peak: images/second, FLOP per image, peak GFLOP/s.
rate() { awk -v n="$1" -v f="$2" -v p="$3" 'BEGIN { g = n * f / 1e9; printf "%7.2f %5.1f%%", g, 100 * g / p }'; }
json_number() { sed -n "s/.*\"$1\": \\([0-9.e+-]*\\).*/\\1/p" "$2" | head -1; }

# Where CIFAR-10 is under $1 as netc's runtime looks for it: "bin DIR" (the official
# binaries) or "folder DIR" (train/ and test/ image folders); nothing when absent.
cifar_location() {
    local base dir f ok
    for base in "$1/cifar10" "$1/cifar-10" "$1"; do
        for dir in "$base" "$base/cifar-10-batches-bin"; do
            ok=1
            for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
                [ -f "$dir/$f.bin" ] || ok=0
            done
            if [ "$ok" = 1 ]; then echo "bin $dir"; return; fi
        done
        if [ -d "$base/train" ] && [ -d "$base/test" ]; then echo "folder $base"; return; fi
    done
}

# The CIFAR-10 binaries every side of W6 reads; a JPEG folder is converted once.
cifar_bin=""
prepare_cifar() {
    local where kind dir py converter=""
    where=$(cifar_location "$cifar_data")
    [ -n "$where" ] || { echo "no CIFAR-10 in $cifar_data: run scripts/get-data --offline cifar10 $cifar_data (or give --cifar-data DIR)" >&2; exit 1; }
    kind=${where%% *} dir=${where#* }
    if [ "$kind" = bin ]; then cifar_bin=$dir; return; fi
    for py in "${peer_pythons[@]}" /usr/bin/python3; do
        if "$py" -c 'import PIL, numpy, torch' 2> /dev/null; then converter=$py; break; fi
    done
    [ -n "$converter" ] || { echo "$dir holds JPEG folders: converting them needs a Python with Pillow, numpy and torch (apt-get install python3-pil)" >&2; exit 1; }
    cifar_bin=$tmp/cifar10-bin
    "$converter" "$here/bench/torch_cifar_hw02.py" --data "$dir" --write-bin "$cifar_bin"
    echo "data: $dir (JPEG folders) decoded by Pillow under $converter into CIFAR-10 binaries in a temporary folder, which netc and the peers read"
}

# Measures one workload: $1 w5 or w6.
measure() {
    local w=$1 model peer title wb macs flop validation=0 t b i ips
    local -a netc_data=() peer_data=()
    case $w in
    w5)
        model=models/lenet5_fashion.net peer=bench/torch_lenet5_fashion.py wb=${batches:-32 100}
        title="W5 base case (LeNet-5, tanh, avgpool, Adam 0.001) on Fashion-MNIST" ;;
    w6)
        model=models/cifar_hw02.net peer=bench/torch_cifar_hw02.py wb=${batches:-128}
        title="W6 HW02 ConvNet (conv-BatchNorm-relu-maxpool x3, dense 120/84/10, Adam 0.0005) on CIFAR-10" ;;
    esac
    echo
    echo "$title"
    if [ "$w" = w6 ]; then
        netc_data=(--data "$cifar_bin") peer_data=(--data "$cifar_bin")
        validation=$("$netc" --emit-ir "$here/$model" | sed -n 's/^ *validation = \([0-9]*\).*/\1/p' | head -1)
    fi
    "$netc" "$here/$model" -o "$tmp/$w"
    macs=$("$netc" --print-shapes "$here/$model" | sed -n 's/^multiply-adds per sample *\([0-9,]*\).*/\1/p' | tr -d ,)
    [ -n "$macs" ] || { echo "netc --print-shapes $model printed no multiply-adds per sample" >&2; exit 1; }
    flop=$((macs * 2 * 3))
    echo "$model: $macs multiply-adds per image forward (netc --print-shapes) x 2 x 3 = $flop FLOP per training image"
    if [ "$validation" -gt 0 ]; then
        echo "training images: netc's (validation = $validation held out, drawn from netc's seed), the same on every side"
    fi
    local header
    header=$(printf '%-7s %-5s %10s %7s %6s %8s' threads batch netc_img/s GFLOP/s %peak netc_acc)
    for name in "${peer_names[@]}"; do header+=$(printf ' | %10s %7s %6s %7s %8s' "${name}_img/s" GFLOP/s %peak ratio acc); done
    echo "$header"
    for t in $threads_list; do
        local used_peak
        used_peak=$(awk -v t="$t" -v c="$cores" -v p="$core_peak" 'BEGIN { printf "%.3f", (t < c ? t : c) * p }')
        for b in $wb; do
            local netc_all="" netc_acc="" seed
            local -A peer_all=() peer_acc=()
            for _ in $(seq "$repeat"); do
                rm -rf "$tmp/run"
                "$tmp/$w" train "${netc_data[@]}" --batch "$b" --epochs "$epochs" --threads "$t" "${limit_args[@]}" \
                    --out "$tmp/run" --quiet > /dev/null
                netc_all="$netc_all $(json_number images_per_second "$tmp/run/summary.json")"
                netc_acc=$(json_number test_accuracy "$tmp/run/summary.json")
                seed=$(json_number seed "$tmp/run/summary.json")
                for i in "${!peer_names[@]}"; do
                    local split=()
                    [ "$w" = w6 ] && split=(--split-seed "$seed" --validation "$validation")
                    line=$("${peer_pythons[$i]}" "$here/$peer" "${peer_data[@]}" "${split[@]}" --batch "$b" \
                        --threads "$t" --epochs "$epochs" "${torch_limit[@]}")
                    peer_all[$i]="${peer_all[$i]:-} $(echo "$line" | field images_per_sec)"
                    peer_acc[$i]=$(echo "$line" | field test_acc)
                done
            done
            local netc_ips row spread
            netc_ips=$(echo "$netc_all" | best)
            row=$(awk -v t="$t" -v b="$b" -v n="$netc_ips" 'BEGIN { printf "%-7s %-5s %10.0f", t, b, n }')
            row+=" $(rate "$netc_ips" "$flop" "$used_peak") $(awk -v a="$netc_acc" 'BEGIN { printf "%7.2f%%", 100 * a }')"
            spread="netc$netc_all"
            for i in "${!peer_names[@]}"; do
                ips=$(echo "${peer_all[$i]}" | best)
                row+=" | $(awk -v p="$ips" 'BEGIN { printf "%10.0f", p }') $(rate "$ips" "$flop" "$used_peak")"
                row+=$(awk -v n="$netc_ips" -v p="$ips" -v a="${peer_acc[$i]}" 'BEGIN { printf " %6.2fx %7.2f%%", n / p, 100 * a }')
                spread+="; ${peer_names[$i]}${peer_all[$i]}"
            done
            echo "$row"
            if [ "$repeat" -gt 1 ]; then echo "        all runs: $spread"; fi
            unset peer_all peer_acc
        done
    done
}

# W6's data first, so that a missing data set stops the run before any measurement.
case " $workloads " in *" w6 "*) prepare_cifar ;; esac
for w in $workloads; do measure "$w"; done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
