#!/bin/bash
# The one call for a machine with an NVIDIA GPU (tests/gpu/README.md says how
# to make it with the device tool): self-contained, about 7 minutes, and every
# answer in one folder. Run scripts/gpu-kit here first; the call carries
# .gpukit/ (prebuilt netc, the shared libraries, MNIST and CIFAR-10).
#
# Steps, each under `timeout`, all inside a deadline (--deadline, default
# 420 s) after which the remaining steps are skipped and the summary is still
# written:
#   kit            unpack .gpukit's libraries (root.tar.xz) and data (MNIST,
#                  CIFAR-10 through scripts/get-data --offline); fails
#                  without .gpukit unless a local build and data are there
#   machine        uname, nvidia-smi (name, compute capability, driver,
#                  memory, clocks), nvcc, gcc, python and torch versions; no
#                  GPU (no nvidia-smi or no driver) fails here, unless
#                  NETC_GPU_DRYRUN=1: then every later step runs on the CUDA
#                  emulator (NETC_CUDA=emu) on tiny limits, and says so
#   netc           the carried netc compiles and links a model (netc -o) and
#                  the program starts; when the binaries built on the kit's
#                  machine do not run here, netc is built here from the
#                  kit's `make dist` tarball (gcc and make only, in parallel)
#   nvrtc_compile  tests/nvrtc_compile: the kernels compile with this
#                  machine's NVRTC for sm_80 and sm_90 without spills (TAP)
#   test_kernels   every kernel against the CPU backend (TAP): the program
#                  the Makefile builds for tests/gpu/test_kernels.c, under
#                  whatever target name it has; skipped, saying so, when the
#                  Makefile has none
#   lenet5_mnist   models/lenet5_mnist.net (W1) for one epoch with
#   cifar_hw02     models/cifar_hw02.net (W6): --device cuda and --device cpu
#                  from the same seed (--seed 1) with NETC_STEP_LOG; passes
#                  when the first 100 steps' losses agree within 1e-4
#                  relative and the final test accuracies within 0.3 points
#                  (also prints the largest loss difference over the epoch)
#   bench          bench/gpu_vs_torch.sh: seconds per W1 epoch at batch 32
#                  and 128 and per W6 epoch at batch 128, netc against
#                  PyTorch (DataLoader, and at its best), NVRTC compile time
#                  cold and cached; its table and JSON come back
#   memcheck       compute-sanitizer --tool memcheck and --tool racecheck,
#   racecheck      each over test_kernels and a short LeNet-5 training run
#                  on the GPU (256 images; 64 for racecheck); skipped with the
#                  reason when the sanitizer answers "Device not supported"
#                  (gVisor) or is absent; a timeout is a skip, not a failure
#                  (these run last, on the time that is left)
#
# Output (in $OUT when set, else /tmp/netc-gpu/results): run.log (everything printed),
# results.json (machine, every step's status, seconds and numbers, the
# bench's JSON), bench.json, logs.tar.gz (each step's own log and step
# files), summary.txt; the last line printed is "N passed, M failed, K skipped".
#
# Usage: tests/gpu/run.sh [--deadline S] [--train-limit N] [--test-limit N] [--no-bench]
# Environment: NETC_GPU_DRYRUN=1 (no GPU: run everything on the emulator,
# default limits --train-limit 320 --test-limit 200), NETC_GPU_BUILD_HERE=1
# (build netc here even when the carried one runs), NETC_GPU_WORK (scratch,
# default /tmp/netc-gpu), CUDA_HOME, PYTHON (the one with torch).
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
KIT=$ROOT/.gpukit
OUT_DIR=${OUT:-${NETC_GPU_WORK:-/tmp/netc-gpu}/results}
WORK=${NETC_GPU_WORK:-/tmp/netc-gpu}
DRY=${NETC_GPU_DRYRUN:-0}
deadline=420 train_limit="" test_limit="" bench=1
while [ $# -gt 0 ]; do
    case $1 in
    --deadline) deadline=$2; shift 2 ;;
    --train-limit) train_limit=$2; shift 2 ;;
    --test-limit) test_limit=$2; shift 2 ;;
    --no-bench) bench=0; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
    esac
done
if [ "$DRY" = 1 ]; then train_limit=${train_limit:-320}; test_limit=${test_limit:-200}; fi
mkdir -p "$OUT_DIR" "$WORK" || exit 2
rm -rf "$WORK/logs" "$WORK/runs" "$WORK/steps"
mkdir -p "$WORK/logs" "$WORK/runs" "$WORK/steps"
LOGS=$WORK/logs
exec > >(tee "$OUT_DIR/run.log") 2>&1
TEE_PID=$!
END_AT=$((SECONDS + deadline))
RECORDS=$WORK/records.tsv   # step, status, seconds, detail
: >"$RECORDS"
passed=0 failed=0 skipped=0
say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
left() { echo $((END_AT - SECONDS)); }
record() { # step pass|fail|skip seconds detail
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf '%s' "$4" | tr '\t\n' '  ')" >>"$RECORDS"
    case $2 in pass) passed=$((passed + 1)) ;; fail) failed=$((failed + 1)) ;; *) skipped=$((skipped + 1)) ;; esac
    say "$1: $(echo "$2" | tr a-z A-Z)${4:+ - $4} (${3} s)"
}
# The time a step may take: what it asks for, never past the deadline (10 s kept for the summary).
budget() { # wanted (never 0, which would mean no limit to timeout)
    local l=$(($(left) - 10))
    [ "$l" -ge 5 ] || l=5
    [ "$1" -lt "$l" ] && echo "$1" || echo "$l"
}
# Runs a command under timeout into LOGS/name.log; sets rc and took.
run_logged() { # name limit command...
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    took=$((SECONDS - start))
}
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "tests/gpu/run.sh at $started_at; deadline ${deadline} s; results in $OUT_DIR"
[ "$DRY" = 1 ] && say "NETC_GPU_DRYRUN=1: a DRY RUN, without a GPU, on the CUDA emulator (NETC_CUDA=emu) and tiny limits"

# ---- kit: libraries and data ----------------------------------------------
LIBDIR="" DATA="" kit_note=""
step_kit() {
    local start=$SECONDS
    if [ -d "$KIT" ]; then
        kit_note="$(tr '\n' ' ' <"$KIT/MANIFEST" 2>/dev/null)"
        note "kit: $kit_note"
        local head
        head=$(git rev-parse HEAD 2>/dev/null || echo unknown)
        [ "$head" = unknown ] || grep -q "commit=$head" "$KIT/MANIFEST" 2>/dev/null ||
            note "WARNING: the kit was made at another commit than this tree's HEAD ($head): run scripts/gpu-kit again"
        rm -rf "$WORK/root"
        mkdir -p "$WORK/root"
        if command -v xz >/dev/null; then
            tar -C "$WORK/root" -xJf "$KIT/root.tar.xz"
        else
            python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$KIT/root.tar.xz" "$WORK/root"
        fi || { record kit fail $((SECONDS - start)) "cannot unpack $KIT/root.tar.xz"; return 1; }
        set_libdir "$WORK/root/lib"
        export NETC_SHARED_DATASETS=$KIT/datasets
    else
        note "no .gpukit (scripts/gpu-kit makes it): using this machine's libraries and ../shared/datasets"
    fi
    DATA=$WORK/data
    local ok=1 d
    for d in mnist cifar10; do
        # A copy unpacked by an earlier run is verified by get-data and kept.
        run_logged "get-data-$d" "$(budget 120)" bash scripts/get-data --offline "$d" "$DATA" || true
        if [ "$rc" != 0 ]; then ok=0; note "get-data $d failed:"; tail -5 "$LOGS/get-data-$d.log"; fi
    done
    if [ $ok = 1 ]; then record kit pass $((SECONDS - start)) "data in $DATA${LIBDIR:+; libraries in $LIBDIR}"
    else DATA=""; record kit fail $((SECONDS - start)) "data missing (see logs/get-data-*.log)"; fi
}

# ---- machine ---------------------------------------------------------------
HAVE_GPU=0 GPU_DESC="" CUDA_HOME=${CUDA_HOME:-}
PYTHON=${PYTHON:-}
step_machine() {
    local start=$SECONDS
    uname -a
    nproc
    free -g 2>/dev/null | head -2
    if command -v nvidia-smi >/dev/null && nvidia-smi >"$LOGS/nvidia-smi.log" 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        HAVE_GPU=1
        cat "$LOGS/nvidia-smi.log"
        GPU_DESC=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm,persistence_mode \
            --format=csv,noheader 2>/dev/null | head -n 1)
        note "GPU: $GPU_DESC"
    else
        note "no GPU: $(command -v nvidia-smi >/dev/null && echo 'nvidia-smi finds no device or driver' || echo 'no nvidia-smi')"
    fi
    if [ -z "$CUDA_HOME" ]; then
        local d
        for d in /usr/local/cuda "$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /x/x/x)")")"; do
            [ -r "$d/include/nvrtc.h" ] && CUDA_HOME=$d && break
        done
    fi
    note "CUDA toolkit: ${CUDA_HOME:-none} $("${CUDA_HOME:-/x}/bin/nvcc" --version 2>/dev/null | tail -n 1)"
    note "gcc: $(gcc --version 2>/dev/null | head -n 1)"; note "make: $(make --version 2>/dev/null | head -n 1)"
    note "compute-sanitizer: $(command -v compute-sanitizer || ls "${CUDA_HOME:-/x}/bin/compute-sanitizer" 2>/dev/null || echo none)"
    if [ -z "$PYTHON" ]; then
        local p
        for p in /opt/torch/.venv/bin/python3 python3 /usr/bin/python3; do
            if "$p" -c 'import torch' 2>/dev/null; then PYTHON=$(command -v "$p"); break; fi
        done
    fi
    note "python with torch: ${PYTHON:-none} $(${PYTHON:-false} -c 'import torch, sys; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>/dev/null)"
    if [ $HAVE_GPU = 1 ]; then
        record machine pass $((SECONDS - start)) "$GPU_DESC"
    elif [ "$DRY" = 1 ]; then
        export NETC_CUDA=emu
        record machine pass $((SECONDS - start)) "no GPU: DRY RUN on the CUDA emulator (NETC_CUDA=emu)"
    else
        record machine fail $((SECONDS - start)) "no GPU (set NETC_GPU_DRYRUN=1 to run the steps on the emulator)"
    fi
}

# ---- netc: the carried build, else one built here ---------------------------
NETC="" NB="" build_note=""
NETENV=(env)   # prefix for netc and its programs: the carried libraries first
set_libdir() { LIBDIR=$1; NETENV=(env "LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"); }
probe_netc() { # build-dir
    local b=$1
    [ -x "$b/compiler/netc" ] || return 1
    export NETC_EMU_LIB=$b/runtime/cuda/emu/libnetemu.so
    [ -r "$NETC_EMU_LIB" ] || NETC_EMU_LIB=$b/runtime/cuda/emu/.libs/libnetemu.so
    {
        "${NETENV[@]}" "$b/compiler/netc" models/lenet5_mnist.net -o "$WORK/probe" &&
            "${NETENV[@]}" "$WORK/probe" --help >/dev/null &&
            { [ ! -x "$b/tests/nvrtc_compile" ] || ! "${NETENV[@]}" ldd "$b/tests/nvrtc_compile" | grep 'not found'; }
    } >"$LOGS/probe-$(basename "$b").log" 2>&1
}
# The Makefile's program target for tests/gpu/test_kernels.c, whatever its
# name: tests/gpu/test_kernels if there, else the first tests/...kernels program.
kernels_target() { # Makefile
    sed -n 's/^\(tests\/[A-Za-z0-9_./-]*kernels[A-Za-z0-9_]*\)\$(EXEEXT):.*/\1/p' "$1" | grep -v nvrtc |
        awk '/test_kernels$/ { print; found = 1; exit } NR == 1 { first = $0 } END { if (!found && first != "") print first }'
}
build_here() { # seconds: the kit's tarball, else this tree when it is bootstrapped
    local src=$WORK/src jobs end=$((SECONDS + $1))
    jobs=$(nproc)
    rm -rf "$src"
    mkdir -p "$src"
    if [ -r "$KIT/netc-src.tar.gz" ]; then
        tar -C "$src" --strip-components=1 -xzf "$KIT/netc-src.tar.gz" || return 1
    elif [ -x configure ]; then
        git ls-files -z | xargs -0 cp --parents -t "$src" && cp -r configure Makefile.in aclocal.m4 config.h.in build-aux m4 "$src/" || return 1
    else
        echo "neither $KIT/netc-src.tar.gz nor a bootstrapped tree (./configure) to build from"
        return 1
    fi
    local cfg=(--with-cuda="${CUDA_HOME:-/usr/local/cuda}")
    if [ -n "$LIBDIR" ]; then
        local inc=$WORK/root/include
        cfg+=(CPPFLAGS="-I$inc" LDFLAGS="-L$LIBDIR -Wl,-rpath,$LIBDIR"
            CAIRO_CFLAGS="-I$inc/cairo" CAIRO_LIBS="-lcairo" CUNIT_CFLAGS="-I$inc" CUNIT_LIBS="-lcunit")
    fi
    (cd "$src" && timeout 120 "${NETENV[@]}" ./configure "${cfg[@]}" &&
        timeout $((end - SECONDS)) make -j"$jobs" && timeout $((end - SECONDS)) make -j"$jobs" tests/nvrtc_compile) || return 1
    local t
    t=$(kernels_target "$src/Makefile")
    if [ -n "$t" ]; then (cd "$src" && timeout $((end - SECONDS)) make -j"$jobs" "$t") || return 1; fi
    return 0
}
# The CUDA backend opens libcublas.so.N and libnvrtc.so.N (N: the toolkit
# netc was built with) by soname, then in the toolkit's lib64. Where neither
# has them, PyTorch's wheels may: their folder goes on the programs' path.
cuda_libraries() {
    local major lib dir
    major=$(sed -n 's/^#define CUDA_VERSION \([0-9]*\)$/\1/p' "$NB/config.h" 2>/dev/null)
    [ -n "$major" ] || major=$(sed -n 's/^cuda_headers=.*(\([0-9]*\))$/\1/p' "$KIT/MANIFEST" 2>/dev/null)
    [ -n "$major" ] || major=$(sed -n 's/^#define CUDA_VERSION \([0-9]*\).*/\1/p' "${CUDA_HOME:-/x}/include/cuda.h" 2>/dev/null)
    [ -n "$major" ] || return 0
    major=$((major / 1000))
    for lib in libcublas.so.$major libnvrtc.so.$major; do
        if ldconfig -p 2>/dev/null | grep -q " $lib " || [ -e "${CUDA_HOME:-/usr/local/cuda}/lib64/$lib" ] ||
            [ -e "/usr/local/cuda/lib64/$lib" ]; then
            note "$lib: found"
            continue
        fi
        dir=$(find /opt/torch /usr/local/lib/python3* /usr/lib/python3 -name "$lib" -path '*nvidia*' 2>/dev/null | head -n 1)
        if [ -n "$dir" ]; then
            dir=$(dirname "$dir")
            note "$lib: not in the toolkit; using $dir"
            NETENV=(env "LD_LIBRARY_PATH=${LIBDIR:+$LIBDIR:}$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
            CUDA_EXTRA_LIBDIR=$dir
        else
            note "$lib: NOT FOUND (the CUDA backend will say so)"
        fi
    done
}
CUDA_EXTRA_LIBDIR=""
step_netc() {
    local start=$SECONDS
    [ -n "$LIBDIR" ] && export CC="gcc -L$LIBDIR -Wl,-rpath,$LIBDIR"
    if [ "${NETC_GPU_BUILD_HERE:-0}" != 1 ] && probe_netc "$KIT/build"; then
        NB=$KIT/build; build_note="the kit's prebuilt netc"
    else
        if [ "${NETC_GPU_BUILD_HERE:-0}" = 1 ]; then note "NETC_GPU_BUILD_HERE=1: not using a carried netc"
        elif [ -d "$KIT/build" ]; then note "the carried netc does not run here:"; tail -8 "$LOGS/probe-build.log"; fi
        if [ "${NETC_GPU_BUILD_HERE:-0}" != 1 ] && [ -x compiler/netc ] && probe_netc "$ROOT"; then
            NB=$ROOT; build_note="this tree's netc"
        else
            note "building netc here ($(nproc) jobs)"
            local t0=$SECONDS
            build_here "$(budget 240)" >"$LOGS/build-here.log" 2>&1
            rc=$?
            if [ "$rc" = 0 ] && probe_netc "$WORK/src"; then NB=$WORK/src; build_note="netc built here in $((SECONDS - t0)) s"
            else tail -30 "$LOGS/build-here.log"; fi
        fi
    fi
    if [ -n "$NB" ]; then
        NETC=$NB/compiler/netc
        cuda_libraries
        record netc pass $((SECONDS - start)) "$build_note"
    else
        record netc fail $((SECONDS - start)) "no working netc (logs/probe-*.log, logs/build-here.log)"
    fi
}

# ---- TAP programs ---------------------------------------------------------
# Counts a TAP log: pass when it has ok lines, no "not ok" and exit 0.
tap_step() { # name log rc took
    local ok notok
    ok=$(grep -c '^ok ' "$2" || true)
    notok=$(grep -c '^not ok ' "$2" || true)
    grep '^not ok\|^Bail out' "$2" | head -20
    if [ "$3" = 124 ] || [ "$3" = 137 ]; then record "$1" fail "$4" "timed out; $ok ok, $notok not ok so far"
    elif [ "$notok" = 0 ] && [ "$3" = 0 ] && [ "$ok" -gt 0 ]; then record "$1" pass "$4" "$ok ok"
    elif [ "$3" = 77 ] || grep -q '^1\.\.0 # SKIP' "$2"; then record "$1" skip "$4" "$(grep -m1 SKIP "$2")"
    else record "$1" fail "$4" "$ok ok, $notok not ok, exit $3"; fi
}
step_nvrtc_compile() {
    if [ ! -x "$NB/tests/nvrtc_compile" ]; then record nvrtc_compile skip 0 "not built (no CUDA toolkit headers where netc was built)"; return; fi
    run_logged nvrtc_compile "$(budget 90)" "${NETENV[@]}" "$NB/tests/nvrtc_compile"
    tap_step nvrtc_compile "$LOGS/nvrtc_compile.log" "$rc" "$took"
}
step_test_kernels() {
    local t="" bin=""
    if [ -f "$NB/Makefile" ]; then t=$(kernels_target "$NB/Makefile")
    else t=$(sed -n 's/^test_kernels_target=//p' "$KIT/MANIFEST" 2>/dev/null); [ "$t" = none ] && t=""; fi
    if [ -n "$t" ]; then
        bin=$NB/$t
        [ -x "$(dirname "$bin")/.libs/$(basename "$bin")" ] && bin=$(dirname "$bin")/.libs/$(basename "$bin")
    fi
    if [ -z "$t" ] || [ ! -x "$bin" ]; then
        record test_kernels skip 0 "the Makefile has no target for tests/gpu/test_kernels.c yet (looked for a tests/...kernels program)"
        return
    fi
    note "running $t"
    KERNELS_BIN=$bin
    run_logged test_kernels "$(budget 150)" "${NETENV[@]}" "$bin"
    tap_step test_kernels "$LOGS/test_kernels.log" "$rc" "$took"
}

# ---- one epoch on the GPU and the CPU ------------------------------------
limits() { echo ${train_limit:+--train-limit $train_limit} ${test_limit:+--test-limit $test_limit}; }
json_num() { sed -n "s/.*\"$2\": *\([-0-9.eE+naNinf]*\).*/\1/p" "$1" 2>/dev/null | head -n 1; }
# Largest relative loss difference over the first N steps, and over all; equal step counts.
compare_steps() { # cpu gpu first-n
    awk -v n="$3" '
        NR == FNR { loss[FNR] = $3; rows = FNR; next }
        { seen++; ref = loss[FNR] < 0 ? -loss[FNR] : loss[FNR]; d = $3 - loss[FNR]; if (d < 0) d = -d
          r = ref > 0 ? d / ref : d
          if (FNR <= n && r > m1) { m1 = r; s1 = FNR }
          if (r > ma) { ma = r; sa = FNR } }
        END { printf "%d %d %.3g %d %.3g %d\n", rows, seen, m1, s1, ma, sa }' "$1" "$2"
}
MODEL_JSON=""
step_model() { # name file
    local name=$1 file=$2 start=$SECONDS dev prog=$WORK/$1
    if [ -z "$NETC" ] || [ -z "$DATA" ]; then record "$name" skip 0 "no netc or no data"; return; fi
    if [ $HAVE_GPU = 0 ] && [ "$DRY" != 1 ]; then record "$name" skip 0 "no GPU"; return; fi
    if ! "${NETENV[@]}" "$NETC" "$file" -o "$prog" >"$LOGS/$name-netc.log" 2>&1; then
        cat "$LOGS/$name-netc.log"; record "$name" fail $((SECONDS - start)) "netc failed"; return
    fi
    for dev in cuda cpu; do
        local limit
        limit=$(budget $([ $dev = cuda ] && echo 120 || echo 150))
        rm -f "$WORK/steps/$name-$dev.steps"
        NETC_STEP_LOG=$WORK/steps/$name-$dev.steps run_logged "$name-$dev" "$limit" "${NETENV[@]}" "$prog" train --device $dev \
            --epochs 1 --seed 1 --data "$DATA" --out "$WORK/runs/$name-$dev" $(limits)
        grep -E '^(device|model|train)' "$LOGS/$name-$dev.log" | sed 's/^/   /'
        note "$dev: exit $rc after $took s; epoch $(json_num "$WORK/runs/$name-$dev/summary.json" train_seconds) s training"
        if [ "$rc" != 0 ]; then
            tail -15 "$LOGS/$name-$dev.log"
            record "$name" fail $((SECONDS - start)) "--device $dev: exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
            return
        fi
    done
    local c g cmp rows seen m1 s1 ma sa acc_c acc_g
    c=$WORK/steps/$name-cpu.steps g=$WORK/steps/$name-cuda.steps
    read -r rows seen m1 s1 ma sa < <(compare_steps "$c" "$g" 100)
    acc_c=$(json_num "$WORK/runs/$name-cpu/summary.json" test_accuracy)
    acc_g=$(json_num "$WORK/runs/$name-cuda/summary.json" test_accuracy)
    local first=$((rows < 100 ? rows : 100))
    local verdict
    verdict=$(awk -v rows="$rows" -v seen="$seen" -v m1="$m1" -v ac="$acc_c" -v ag="$acc_g" 'BEGIN {
        d = ac - ag; if (d < 0) d = -d
        # accuracies are fractions in summary.json: 0.3 points = 0.003
        scale = (ac > 1.5 || ag > 1.5) ? 1 : 100
        if (rows == 0 || rows != seen) { print "fail step counts differ"; exit }
        if (!(m1 <= 1e-4)) { print "fail losses"; exit }
        if (ac == "" || ag == "" || !(d * scale <= 0.3)) { print "fail accuracy"; exit }
        print "pass" }')
    local detail
    detail=$(printf '%d steps; first %d: max rel loss diff %s (step %s); whole epoch: %s (step %s); test accuracy cpu %s gpu %s; gpu epoch %s s, cpu epoch %s s' \
        "$rows" "$first" "$m1" "$s1" "$ma" "$sa" "$acc_c" "$acc_g" \
        "$(json_num "$WORK/runs/$name-cuda/summary.json" train_seconds)" "$(json_num "$WORK/runs/$name-cpu/summary.json" train_seconds)")
    [ "$rows" != "$seen" ] && detail="$detail; cpu $rows steps, gpu $seen steps"
    if [ "$verdict" = pass ]; then record "$name" pass $((SECONDS - start)) "$detail"
    else
        note "first differing steps (cpu | gpu):"
        paste "$c" "$g" | awk '{ d = $3 - $7; if (d < 0) d = -d; r = $3 != 0 ? d / ($3 < 0 ? -$3 : $3) : d; if (r > 1e-4) print "   " $0 }' | head -5
        record "$name" fail $((SECONDS - start)) "${verdict#fail }: $detail"
    fi
}

# ---- compute-sanitizer ----------------------------------------------------
KERNELS_BIN=""   # the test_kernels program, once found
# One sanitizer tool over test_kernels (every kernel) and a short LeNet-5
# training run; a timeout is a skip (these run last, on what time is left).
step_sanitizer() { # tool
    local tool=$1 san start=$SECONDS n=256 what results="" verdict=pass
    san=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/x}/bin/compute-sanitizer" 2>/dev/null || true)
    if [ $HAVE_GPU = 0 ]; then record "$tool" skip 0 "no GPU"; return; fi
    if [ -z "$san" ]; then record "$tool" skip 0 "compute-sanitizer not installed"; return; fi
    [ "$tool" = racecheck ] && n=64
    for what in test_kernels lenet5; do
        local log=$tool-$what
        if [ $what = test_kernels ]; then
            [ -n "$KERNELS_BIN" ] || continue
            run_logged "$log" "$(budget 60)" "${NETENV[@]}" "$san" --tool "$tool" --error-exitcode 99 "$KERNELS_BIN"
        else
            [ -x "$WORK/lenet5_mnist" ] && [ -n "$DATA" ] || continue
            run_logged "$log" "$(budget 60)" "${NETENV[@]}" "$san" --tool "$tool" --error-exitcode 99 "$WORK/lenet5_mnist" \
                train --device cuda --epochs 1 --seed 1 --data "$DATA" --train-limit $n --test-limit 256 --out "$WORK/runs/$log"
        fi
        grep -E '^=========|^device' "$LOGS/$log.log" | grep -v '^========= *$' | head -20
        if grep -q 'Device not supported' "$LOGS/$log.log"; then
            record "$tool" skip $((SECONDS - start)) "compute-sanitizer: Device not supported (gVisor runtime, as KINDS.md records)"
            return
        fi
        local summary
        summary=$(grep -m1 'ERROR SUMMARY' "$LOGS/$log.log" | sed 's/=* *//')
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then results="$results$what: did not finish in its time; "
            [ $verdict = pass ] && verdict=skip
        elif [ "$rc" = 0 ]; then results="$results$what: ${summary:-exit 0}; "
        else tail -25 "$LOGS/$log.log"; results="$results$what: exit $rc, ${summary:-no summary}; "; verdict=fail; fi
    done
    [ -n "$results" ] || { record "$tool" skip 0 "nothing to run it on"; return; }
    record "$tool" $verdict $((SECONDS - start)) "${results%; }"
}

# ---- bench ----------------------------------------------------------------
step_bench() {
    if [ $bench = 0 ]; then record bench skip 0 "--no-bench"; return; fi
    if [ -z "$NETC" ] || [ -z "$DATA" ]; then record bench skip 0 "no netc or no data"; return; fi
    if [ $HAVE_GPU = 0 ] && [ "$DRY" != 1 ]; then record bench skip 0 "no GPU"; return; fi
    local limit args=(--netc "$NETC" --data "$DATA" --out "$WORK/bench")
    limit=$(budget 200)
    [ "$DRY" = 1 ] && args+=(--dry ${train_limit:+--train-limit $train_limit})
    [ -n "$PYTHON" ] && args+=(--python "$PYTHON")
    rm -rf "$WORK/bench"
    args+=(--deadline $((limit - 5)))
    [ -n "$LIBDIR$CUDA_EXTRA_LIBDIR" ] && args+=(--libdir "$LIBDIR${CUDA_EXTRA_LIBDIR:+:$CUDA_EXTRA_LIBDIR}")   # netc's programs only
    run_logged bench "$limit" bash bench/gpu_vs_torch.sh "${args[@]}"
    sed -n '/^| /p;/^note/p;/^target/p' "$LOGS/bench.log"
    if [ "$rc" = 0 ] && [ -s "$WORK/bench/bench.json" ]; then
        cp "$WORK/bench/bench.json" "$OUT_DIR/bench.json"
        record bench pass "$took" "$(grep -c '^| W' "$LOGS/bench.log") rows; bench.json"
    else
        tail -20 "$LOGS/bench.log"
        [ -s "$WORK/bench/bench.json" ] && cp "$WORK/bench/bench.json" "$OUT_DIR/bench.json"
        record bench fail "$took" "exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
    fi
}

# ---- the steps, within the deadline ---------------------------------------
step() { # name function args...
    local name=$1
    shift
    if [ "$(left)" -lt 20 ]; then record "$name" skip 0 "deadline (${deadline} s) reached"; return; fi
    say "$name"
    "$@"
}
export XDG_CACHE_HOME=$WORK/cache   # NVRTC's cubin cache: empty, so the first GPU run compiles
rm -rf "$XDG_CACHE_HOME"
step kit step_kit
step machine step_machine
step netc step_netc
if [ -n "$NETC" ] && { [ $HAVE_GPU = 1 ] || [ "$DRY" = 1 ]; }; then
    step nvrtc_compile step_nvrtc_compile
    step test_kernels step_test_kernels
fi
step lenet5_mnist step_model lenet5_mnist models/lenet5_mnist.net
step cifar_hw02 step_model cifar_hw02 models/cifar_hw02.net
step bench step_bench
step memcheck step_sanitizer memcheck
step racecheck step_sanitizer racecheck

# ---- summary ----------------------------------------------------------------
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\000-\037')"; }
{
    printf '{\n  "started": %s,\n  "dry_run": %s,\n  "gpu": %s,\n  "kernel": %s,\n  "netc": %s,\n  "kit": %s,\n' \
        "$(json_str "$started_at")" "$([ "$DRY" = 1 ] && [ $HAVE_GPU = 0 ] && echo true || echo false)" \
        "$(json_str "$GPU_DESC")" "$(json_str "$(uname -r) (4.4.0 is gVisor)")" "$(json_str "$build_note")" "$(json_str "$kit_note")"
    printf '  "deadline_s": %s,\n  "elapsed_s": %s,\n  "limits": %s,\n  "steps": [\n' "$deadline" "$SECONDS" \
        "$(json_str "$(limits)")"
    sep=""
    while IFS=$'\t' read -r s st sec det; do
        printf '%s    {"step": %s, "status": %s, "seconds": %s, "detail": %s}' "$sep" "$(json_str "$s")" \
            "$(json_str "$st")" "${sec:-0}" "$(json_str "$det")"
        sep=$',\n'
    done <"$RECORDS"
    printf '\n  ],\n  "passed": %d,\n  "failed": %d,\n  "skipped": %d,\n  "bench": ' "$passed" "$failed" "$skipped"
    if [ -s "$OUT_DIR/bench.json" ]; then cat "$OUT_DIR/bench.json"; else printf 'null'; fi
    printf '\n}\n'
} >"$OUT_DIR/results.json"
tar -C "$WORK" -czf "$OUT_DIR/logs.tar.gz" logs steps $(cd "$WORK" && ls -d runs/*/summary.json runs/*/metrics.csv \
    bench/*.log bench/*.json bench/*.jsonl bench/run-*/summary.json 2>/dev/null) 2>/dev/null
say "summary ($SECONDS s; logs in $OUT_DIR/logs.tar.gz)"
if command -v column >/dev/null; then column -t -s $'\t' "$RECORDS" | cut -c1-240; else cat "$RECORDS"; fi
[ "$DRY" = 1 ] && [ $HAVE_GPU = 0 ] && say "this was a DRY RUN on the CUDA emulator, not a GPU: timings and the bench mean nothing"
line="$passed passed, $failed failed, $skipped skipped"
echo "$line" | tee "$OUT_DIR/summary.txt"
# Let tee write the log's last lines before the call collects $OUT.
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
[ $failed -eq 0 ]
