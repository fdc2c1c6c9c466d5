#!/bin/bash
# The one command for a machine with an NVIDIA GPU: builds the CUDA tests
# with plain gcc (no configure, no CUnit), shows the GPU, and runs
#   1. tests/nvrtc_compile     the kernels compile for sm_80 and sm_90 (registers, spills)
#   2. tests/gpu/test_kernels  every kernel against the CPU backend
#   3. compute-sanitizer memcheck and racecheck over test_kernels (when installed;
#      NETC_GPU_SANITIZE=0 skips them)
# and ends with one line: "N passed, M failed". Logs go to $OUT when set.
# Usage (from anywhere): tests/gpu/run.sh
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
BUILD=${NETC_GPU_BUILD:-/tmp/netc_gpu_build}
LOG_DIR=${OUT:-$BUILD}
mkdir -p "$BUILD" "$LOG_DIR"
passed=0 failed=0 skipped=0
say() { printf '== %s\n' "$*"; }

# Count a program's TAP lines (or, for one without TAP, its exit status).
tally() { # name logfile status
    local ok notok
    ok=$(grep -c '^ok ' "$2" || true)
    notok=$(grep -c '^not ok ' "$2" || true)
    if [ "$ok" -eq 0 ] && [ "$notok" -eq 0 ]; then
        if [ "$3" -eq 77 ]; then skipped=$((skipped + 1)); say "$1: SKIPPED"
        elif [ "$3" -eq 0 ]; then passed=$((passed + 1)); say "$1: passed"
        else failed=$((failed + 1)); say "$1: FAILED (exit $3, no TAP lines)"; fi
        return
    fi
    passed=$((passed + ok)); failed=$((failed + notok))
    if [ "$notok" -eq 0 ] && [ "$3" -ne 0 ]; then failed=$((failed + 1)); notok="exit $3"; fi
    say "$1: $ok passed, $notok failed"
}

say "machine"
uname -a
nvidia-smi || say "nvidia-smi failed"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>/dev/null

CUDA_HOME=${CUDA_HOME:-}
if [ -z "$CUDA_HOME" ]; then
    for d in /usr/local/cuda "$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /x/x/x)")")"; do
        [ -r "$d/include/nvrtc.h" ] && CUDA_HOME=$d && break
    done
fi
[ -n "$CUDA_HOME" ] || { say "no CUDA toolkit found (nvrtc.h)"; echo "0 passed, 1 failed"; exit 1; }
CUDA_LIB=$CUDA_HOME/lib64; [ -d "$CUDA_LIB" ] || CUDA_LIB=$CUDA_HOME/lib
say "CUDA toolkit: $CUDA_HOME ($("$CUDA_HOME/bin/nvcc" --version 2>/dev/null | tail -1))"
CC=${CC:-gcc}
$CC --version | head -1

CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -O2 -g -I$CUDA_HOME/include"
LINK_CUDA="-L$CUDA_LIB -Wl,-rpath,$CUDA_LIB -lnvrtc"
# libcuda: the driver's own at run time; the toolkit's stub only to link
# when the driver's is not on the linker's path.
if ! echo 'int main(void){return 0;}' | $CC -x c - -lcuda -o "$BUILD/probe" 2>/dev/null; then
    LINK_DRIVER="-L$CUDA_LIB/stubs -lcuda"
else
    LINK_DRIVER="-lcuda"
fi
OMP=""
echo 'int main(void){return 0;}' | $CC -fopenmp -x c - -o "$BUILD/probe" 2>/dev/null && OMP="-fopenmp"
if echo '#include <cblas.h>
int main(void){cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,0,0,0,1,0,1,0,1,0,0,1);return 0;}' |
    $CC -x c - -lopenblas -o "$BUILD/probe" 2>/dev/null; then
    BLAS="-lopenblas"; BLAS_SRC=""; say "CPU reference BLAS: OpenBLAS"
else
    BLAS=""; BLAS_SRC="tests/gpu/fallback/cblas_sgemm.c"; CFLAGS="$CFLAGS -Itests/gpu/fallback"
    say "CPU reference BLAS: OpenBLAS not found, using tests/gpu/fallback/cblas_sgemm.c (plain loops)"
fi
say "OpenMP: ${OMP:-none}"

# The kernels' source, embedded as the build embeds it (scripts/embed-cuda).
sh scripts/embed-cuda nr_cuda_kernels_embedded runtime/cuda/kernels.cu runtime/cuda/kernels.cu > "$BUILD/kernels_embed.c" || {
    say "embed-cuda failed"; exit 1; }
CUDA_SRC="runtime/cuda/nvrtc.c runtime/cuda/kernels.c $BUILD/kernels_embed.c"
CPU_SRC="runtime/cpu/ops.c runtime/cpu/loss.c runtime/optim.c runtime/rng.c runtime/nr_error.c"
build() { # name command...
    local name=$1; shift
    say "build $name"
    if "$@" > "$LOG_DIR/build_$name.log" 2>&1; then
        grep -i warning "$LOG_DIR/build_$name.log" | head -20
        return 0
    fi
    cat "$LOG_DIR/build_$name.log" | head -60
    failed=$((failed + 1)); say "build $name: FAILED"
    return 1
}
build nvrtc_compile $CC $CFLAGS tests/nvrtc_compile.c $CUDA_SRC runtime/nr_error.c $LINK_CUDA -o "$BUILD/nvrtc_compile"
have_nvrtc=$?
build test_kernels $CC $CFLAGS $OMP tests/gpu/test_kernels.c runtime/cuda/layers.c runtime/cuda/gpu.c $CUDA_SRC \
    $CPU_SRC $BLAS_SRC $LINK_CUDA -lcublas $LINK_DRIVER $BLAS -lm -o "$BUILD/test_kernels"
have_tests=$?

run() { # name timeout command...
    local name=$1 limit=$2; shift 2
    say "run $name"
    local start=$SECONDS
    timeout "$limit" "$@" > "$LOG_DIR/$name.log" 2>&1
    local status=$?
    cat "$LOG_DIR/$name.log"
    say "$name: exit $status after $((SECONDS - start)) s"
    if [ $status -eq 124 ]; then failed=$((failed + 1)); say "$name: TIMED OUT after $limit s"; return; fi
    tally "$name" "$LOG_DIR/$name.log" $status
}
export XDG_CACHE_HOME=$BUILD/cache   # a fresh cache: the first start compiles
rm -rf "$XDG_CACHE_HOME"
[ $have_nvrtc -eq 0 ] && run nvrtc_compile 120 "$BUILD/nvrtc_compile"
[ $have_tests -eq 0 ] && run test_kernels 300 "$BUILD/test_kernels"

SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ $have_tests -eq 0 ] && [ "${NETC_GPU_SANITIZE:-1}" != 0 ] && [ -n "$SAN" ]; then
    for tool in memcheck racecheck; do
        say "compute-sanitizer --tool $tool"
        start=$SECONDS
        timeout 240 "$SAN" --tool $tool --error-exitcode 99 "$BUILD/test_kernels" > "$LOG_DIR/sanitizer_$tool.log" 2>&1
        status=$?
        grep -v '^ok \|^#   ' "$LOG_DIR/sanitizer_$tool.log" | tail -25
        case $status in
        0) passed=$((passed + 1)); say "$tool: clean ($((SECONDS - start)) s)" ;;
        124) skipped=$((skipped + 1)); say "$tool: did not finish in 240 s (not counted)" ;;
        *) failed=$((failed + 1)); say "$tool: FAILED (exit $status)" ;;
        esac
    done
elif [ -z "$SAN" ]; then
    say "compute-sanitizer not found: memcheck and racecheck not run"
fi

say "summary (logs in $LOG_DIR)"
echo "$passed passed, $failed failed${skipped:+, $skipped skipped}"
[ $failed -eq 0 ]
