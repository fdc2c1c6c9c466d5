#!/bin/bash
# Runs the fuzz harness (built with a plain main) over every corpus input:
# a crash, hang or sanitizer report fails the test.
set -u
srcdir=${srcdir:-.}
bin=${FUZZ_CORPUS_BIN:-./tests/fuzz/fuzz_corpus}
inputs=("$srcdir"/tests/fuzz/corpus/* "$srcdir"/models/*.net "$srcdir"/examples/*.net "$srcdir"/tests/diagnostics/*.net)
log=$(mktemp) || exit 99
trap 'rm -f "$log"' EXIT
if timeout 300 "$bin" "${inputs[@]}" > "$log" 2>&1; then
    echo "ok 1 - front end survives ${#inputs[@]} corpus inputs"
else
    echo "not ok 1 - front end on the corpus (exit status $?)"
    tail -40 "$log" | sed 's/^/# /'
fi
echo "1..1"
