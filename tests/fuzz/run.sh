#!/bin/bash
# Fuzzes the netc front end with libFuzzer for SECONDS (default 300).
#
#   tests/fuzz/run.sh [SECONDS]
#
# Builds tests/fuzz/fuzz_frontend.c with clang -fsanitize=fuzzer,address,undefined
# from the sources (the generated grammar/parser.c and grammar/lexer.c are taken
# from the build tree: run `make` first), then fuzzes a copy of the seed corpus
# (tests/fuzz/corpus plus models/, examples/ and tests/diagnostics/) with the
# dictionary tests/fuzz/netc.dict. Crashes, hangs, leaks and sanitizer reports
# are saved under tests/fuzz/crashes/ and make the script exit non-zero.
#
# Environment:
#   CLANG     compiler (default: clang, else clang-14)
#   BUILDDIR  the configured build tree (default: the source tree)
#   FUZZDIR   scratch directory for the binary and the working corpus
#             (default: tests/fuzz/build)
#   JOBS      parallel fuzzing processes (default: 1)
#   FUZZ_ARGS extra libFuzzer flags
#
# To reproduce a crash: tests/fuzz/build/fuzz_frontend tests/fuzz/crashes/crash-...
# To minimise it:       tests/fuzz/build/fuzz_frontend -minimize_crash=1 -runs=10000 CRASH
set -u

seconds=${1:-300}
case $seconds in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILDDIR:-$top}
work=${FUZZDIR:-$here/build}
crashes=$here/crashes
jobs=${JOBS:-1}

if [ -n "${CLANG:-}" ]; then cc=$CLANG
elif command -v clang >/dev/null 2>&1; then cc=clang
elif command -v clang-14 >/dev/null 2>&1; then cc=clang-14
else echo "$0: clang not found (set CLANG)" >&2; exit 2
fi

for f in grammar/parser.c grammar/lexer.c grammar/parser.h; do
    if [ ! -f "$build/$f" ]; then
        echo "$0: $build/$f is missing: run 'make' first (or set BUILDDIR)" >&2
        exit 2
    fi
done

mkdir -p "$work/obj" "$work/corpus" "$crashes" || exit 2

# ---- build ---------------------------------------------------------------
# Objects are built with -fsanitize=fuzzer-no-link so only the harness
# brings libFuzzer's main.
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer
        "-fsanitize=address,undefined" -fno-sanitize-recover=undefined)
incs=(-I"$top/compiler" -I"$build/grammar" -I"$top/grammar" -I"$build" -I"$top")
srcs=("$build/grammar/parser.c" "$build/grammar/lexer.c")
for f in "$top"/compiler/*.c; do
    [ "$(basename "$f")" = netc.c ] || srcs+=("$f")
done
objs=()
for f in "${srcs[@]}"; do
    o=$work/obj/$(basename "${f%.c}").o
    objs+=("$o")
    stale=0
    [ -f "$o" ] || stale=1
    for dep in "$f" "$0" "$build/grammar/parser.h" "$top"/grammar/*.h "$top"/compiler/*.h; do
        [ "$dep" -nt "$o" ] && stale=1
    done
    if [ "$stale" = 1 ]; then
        # the flex/bison output is not warning-clean; our own files should be
        extra=-Wall
        case $f in */grammar/*) extra=-w ;; esac
        echo "  CC  $(basename "$f")"
        "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link "$extra" "${incs[@]}" -c "$f" -o "$o" || exit 2
    fi
done
echo "  LD  fuzz_frontend"
"$cc" "${cflags[@]}" -fsanitize=fuzzer -Wall -Wextra "${incs[@]}" "$here/fuzz_frontend.c" "${objs[@]}" -lm \
    -o "$work/fuzz_frontend" || {
    echo "$0: link failed; if libFuzzer's runtime is missing: apt-get install -y libclang-rt-14-dev" >&2
    exit 2
}

# ---- corpus --------------------------------------------------------------
# A working copy: libFuzzer adds the inputs it finds there, and the seeds in
# git stay small and readable. New finds of earlier runs are kept.
for f in "$here"/corpus/* "$top"/models/*.net "$top"/examples/*.net "$top"/tests/diagnostics/*.net; do
    [ -f "$f" ] || continue
    cp -f "$f" "$work/corpus/seed_$(basename "$(dirname "$f")")_$(basename "$f")"
done

# ---- fuzz ----------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$work/fuzz.log
echo "fuzzing for ${seconds}s with $jobs job(s); log in $log"
args=(-max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048
      -dict="$here/netc.dict" -artifact_prefix="$crashes/" -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then
    args+=(-jobs="$jobs" -workers="$jobs")
fi
before=$(find "$crashes" -type f | wc -l)
# shellcheck disable=SC2086
(cd "$work" && rm -f fuzz-*.log &&
    ./fuzz_frontend "${args[@]}" ${FUZZ_ARGS:-} corpus) > "$log" 2>&1
rc=$?
rm -f "$work"/fuzz-*.log  # with -jobs, libFuzzer copies each job's log into ours
after=$(find "$crashes" -type f | wc -l)
grep -E '^(stat::|#[0-9]+ +DONE)' "$log" | tail -8
if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "FAILED: libFuzzer exit status $rc; $((after - before)) new artifact(s) in $crashes"
    grep -E 'ERROR: |runtime error:|SUMMARY:|Test unit written' "$log" | head -20
    exit 1
fi
echo "no crash found"
exit 0
