#!/bin/sh
# scripts/embed-cuda, which embeds the CUDA sources at build time: quoted
# includes expanded once each and relative to the including file, #line
# directives naming the real files, a char array ending with a NUL, system
# includes and missing files refused. Needs no CUDA toolkit.
set -u
srcdir=${srcdir:-.}
embed=$srcdir/scripts/embed-cuda
case $embed in /*) ;; *) embed=$PWD/$embed ;; esac
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
check() { # status description [detail file]
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        failed=$((failed + 1))
        echo "not ok $n - $2"
        [ $# -ge 3 ] && [ -e "$3" ] && sed 's/^/# /' "$3"
    fi
}
# the text of the array in a generated C file (its bytes are ASCII here)
decode() {
    awk 'NR > 2 { gsub(/[^0-9,]/, ""); n = split($0, b, ","); for (i = 1; i <= n; i++) if (b[i] != "" && b[i] + 0 != 0) printf "%c", b[i] + 0 }' "$1"
}

mkdir -p "$tmp/src/sub"
printf 'top 1\n#include "sub/a.cuh"\ntop 3\n#include "b.cuh"\ntop 5\n' > "$tmp/src/top.cu"
printf '#include "../b.cuh"\na 2\n' > "$tmp/src/sub/a.cuh"
printf 'b 1\n' > "$tmp/src/b.cuh"
cat > "$tmp/expected" <<'END'
#line 1 "dir/top.cu"
top 1
#line 1 "dir/sub/a.cuh"
#line 1 "dir/b.cuh"
b 1
#line 2 "dir/sub/a.cuh"
a 2
#line 3 "dir/top.cu"
top 3
/* #include "b.cuh": included above */
#line 5 "dir/top.cu"
top 5
END
sh "$embed" my_source "$tmp/src/top.cu" dir/top.cu > "$tmp/out.c" 2> "$tmp/err"
check $? "embeds a source with nested includes" "$tmp/err"
head -2 "$tmp/out.c" | grep -q '^const char my_source\[\] = {$'
check $? "defines a char array under the given name" "$tmp/out.c"
tail -1 "$tmp/out.c" | grep -q '^0 };$'
check $? "the array ends with a NUL"
decode "$tmp/out.c" > "$tmp/text"
cmp -s "$tmp/expected" "$tmp/text"
diff "$tmp/expected" "$tmp/text" > "$tmp/diff" 2>&1
check $? "includes expanded once each, relative to the including file, with #line directives" "$tmp/diff"

printf 'x\n#include <math.h>\n' > "$tmp/src/system.cu"
if sh "$embed" s "$tmp/src/system.cu" > /dev/null 2> "$tmp/err"; then status=1; else status=0; fi
grep -q 'system.cu:2: system include' "$tmp/err" || status=1
check $status "refuses a system include, naming the file and line" "$tmp/err"

printf '#include "nowhere.cuh"\n' > "$tmp/src/missing.cu"
if sh "$embed" s "$tmp/src/missing.cu" > /dev/null 2> "$tmp/err"; then status=1; else status=0; fi
grep -q 'missing.cu:1: cannot read' "$tmp/err" || status=1
check $status "refuses a missing include, naming the file and line" "$tmp/err"

echo "1..$n"
[ "$failed" = 0 ]
