#!/bin/bash
# Runs every example of the man pages, one TAP line each.
#
# Usage: tests/man_examples.sh [TOP_SRCDIR]
#   TOP_SRCDIR defaults to $srcdir, then to the current directory;
#   the netc binary is $NETC, or ./compiler/netc.
#
# Every example block of man/netc.1 and man/netc.net.5 (.EX ... .EE) must be
# preceded, on the line right before .EX, by a marker comment
#     .\" example: KIND
# where KIND says how the example is checked:
#   file           a complete .net file: `netc --check` exits 0 and prints
#                  nothing (no error, no warning);
#   fragment       part of a file, checked the same way once completed:
#                  leading `param`/`sweep` lines (and comments) go to the top
#                  of the file; if the rest holds blocks (`data { ... }`,
#                  `train { ... }`) it follows a small model, unless it has a
#                  model block of its own; otherwise it is a layer list,
#                  wrapped as
#                      model m {
#                      input = [1, 28, 28]
#                      classes = 10
#                      ...the layers...
#                      fc: dense(10)
#                      }
#   fragment-skip  not checkable on its own: reported as skipped;
#   shell          shell commands, run with `bash -e -o pipefail` from
#                  TOP_SRCDIR with netc on PATH and TMPDIR set to a private
#                  temporary directory: they must exit 0;
#   output         what a command prints: reported as skipped.
# The example text is the page source with the groff escapes undone
# (\- \e \\ \& \(aq \(dq \(ha \(ti \(ga \(rs \f...); a raw - ' ` ^ or ~ in
# an example fails, as groff may render it as another character (write \-,
# \(aq, \(ga, \(ha, \(ti), and so does a line that starts with . or '
# (write \&. or \&').
# Each page must also format without warnings (groff -man -ww -z), when
# groff is installed.
set -u
. "$(dirname "$0")/lib.sh"
top=${1:-${srcdir:-.}}
netc=${NETC:-./compiler/netc}
case $netc in /*) ;; *) netc=$PWD/$netc ;; esac
if ! cd "$top"; then
    echo "Bail out! cannot enter $top"
    exit 99
fi
if [ ! -x "$netc" ]; then
    echo "Bail out! no netc binary at $netc (set NETC)"
    exit 99
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin" "$tmp/ex"
ln -s "$netc" "$tmp/bin/netc"

pages="man/netc.1 man/netc.net.5"
npages=2

# extract PAGE: writes $tmp/ex/N.txt (the unescaped text) and N.err (escape
# problems), and appends "N<TAB>PAGE<TAB>LINE<TAB>KIND" to $tmp/list.
# Problems of the page itself (an .EX without .EE) become entries of kind
# "broken" with the message in N.err.
extract() {
    awk -v page="$1" -v dir="$tmp/ex" -v start="$2" '
    function problem(msg) { errs = errs msg "\n" }
    # Undoes the groff escapes of one line of an example.
    function unescape(s, lineno,    out, i, c, n, name, cl) {
        out = ""
        i = 1
        n = length(s)
        while (i <= n) {
            c = substr(s, i, 1)
            if (c != "\\") {
                if (c == "-" || c == "\047" || c == "`" || c == "^" || c == "~")
                    problem("line " lineno ": raw \"" c "\" (write " \
                            (c == "-" ? "\\-" : c == "\047" ? "\\(aq" : c == "`" ? "\\(ga" : c == "^" ? "\\(ha" : "\\(ti") ")")
                out = out c
                i++
                continue
            }
            c = substr(s, i + 1, 1)
            i += 2
            if (c == "-") out = out "-"
            else if (c == "e" || c == "\\") out = out "\\"
            else if (c == "&" || c == "%" || c == ":" || c == "|" || c == "^" || c == ")" || c == "/" || c == ",") ;
            else if (c == " " || c == "~" || c == "0") out = out " "
            else if (c == "\"") break
            else if (c == "(" || c == "[") {
                if (c == "(") { name = substr(s, i, 2); i += 2 }
                else { cl = index(substr(s, i), "]"); if (!cl) { problem("line " lineno ": unterminated \\["); break }
                       name = substr(s, i, cl - 1); i += cl }
                if (name == "aq") out = out "\047"
                else if (name == "dq") out = out "\""
                else if (name == "ha") out = out "^"
                else if (name == "ti") out = out "~"
                else if (name == "ga") out = out "`"
                else if (name == "rs") out = out "\\"
                else if (name == "mi" || name == "hy" || name == "en") out = out "-"
                else problem("line " lineno ": unknown special character \\(" name)
            } else if (c == "f") {
                c = substr(s, i, 1)
                if (c == "(") i += 3
                else if (c == "[") { cl = index(substr(s, i), "]"); i += cl ? cl : 1 }
                else i++
            } else problem("line " lineno ": escape \\" c " has no plain-text meaning here")
        }
        return out
    }
    function finish(kind) {
        count++
        id = start + count
        printf "%s", text > (dir "/" id ".txt")
        printf "%s", errs > (dir "/" id ".err")
        close(dir "/" id ".txt")
        close(dir "/" id ".err")
        printf "%d\t%s\t%d\t%s\n", id, page, exline, kind
    }
    {
        if (!inex) {
            if ($0 ~ /^\.EX([ \t]|$)/) {
                inex = 1
                exline = NR
                text = ""
                errs = ""
                kind = ""
                if (prev ~ /^\.\\" example: [a-z-]+[ \t]*$/) {
                    kind = prev
                    sub(/^\.\\" example: /, "", kind)
                    sub(/[ \t]+$/, "", kind)
                } else {
                    kind = "broken"
                    problem("no marker: the line before .EX must be .\\\" example: KIND")
                }
            } else if ($0 ~ /^\.EE([ \t]|$)/) {
                exline = NR; text = ""; errs = ""
                problem(".EE without .EX")
                finish("broken")
            }
            prev = $0
            next
        }
        if ($0 ~ /^\.EE([ \t]|$)/) {
            finish(kind)
            inex = 0
            prev = $0
            next
        }
        if ($0 ~ /^\.EX([ \t]|$)/) problem("line " NR ": .EX inside an example")
        else if ($0 ~ /^[.\047]/) problem("line " NR ": starts with a control character (write \\&" substr($0, 1, 1) ")")
        text = text unescape($0, NR) "\n"
    }
    END {
        if (inex) { problem(".EX without .EE"); finish("broken") }
    }' "$1"
}

: > "$tmp/list"
n=0
for page in $pages; do
    if [ ! -f "$page" ]; then
        printf '%d\t%s\t0\tmissing\n' $((n + 1)) "$page" >> "$tmp/list"
        n=$((n + 1))
        continue
    fi
    if ! extract "$page" "$n" >> "$tmp/list"; then
        echo "Bail out! cannot read the examples of $page"
        exit 99
    fi
    # A page with no example found means the markers or this script broke,
    # not that there is nothing to run: it fails.
    if [ "$(wc -l < "$tmp/list")" = "$n" ]; then
        n=$((n + 1))
        echo "no .EX/.EE example found in $page" > "$tmp/ex/$n.err"
        printf '%d\t%s\t0\tbroken\n' "$n" "$page" >> "$tmp/list"
    fi
    n=$(wc -l < "$tmp/list")
done

have_groff=0
command -v groff > /dev/null 2>&1 && have_groff=1
total=$(( $(wc -l < "$tmp/list") + npages ))
echo "1..$total"

n=0
failed=0
tap_detail="head -60"

base_model='model m {
input = [1, 28, 28]
classes = 10
flatten
fc: dense(10)
}'

# build_fragment TEXT_FILE OUT_FILE: completes a fragment into a file.
build_fragment() {
    awk -v base="$base_model" '
    BEGIN { head = ""; body = ""; inbody = 0; blocks = 0; model = 0 }
    {
        if (!inbody && ($0 ~ /^[ \t]*(#.*)?$/ || $0 ~ /^[ \t]*(param|sweep)[ \t]/)) { head = head $0 "\n"; next }
        inbody = 1
        body = body $0 "\n"
        if ($0 ~ /^[A-Za-z_][A-Za-z0-9_]*([ \t]+[A-Za-z_][A-Za-z0-9_]*)?[ \t]*\{/) blocks = 1
        if ($0 ~ /^model[ \t]/) model = 1
    }
    END {
        printf "%s", head
        if (blocks && model) printf "%s", body
        else if (blocks) printf "%s\n%s", base, body
        else printf "model m {\ninput = [1, 28, 28]\nclasses = 10\n%sfc: dense(10)\n}\n", body
    }' "$1" > "$2"
}

check_net() {  # FILE LOG: netc --check, clean
    "$netc" --check --color=never "$1" > "$2" 2>&1
    local rc=$?
    if [ "$rc" = 0 ] && [ ! -s "$2" ]; then return 0; fi
    {
        echo "netc --check exited with status $rc; its output:"
        cat "$2"
        echo "the file checked:"
        cat -n "$1"
    } > "$2.why"
    mv "$2.why" "$2"
    return 1
}

while IFS="$(printf '\t')" read -r id page line kind; do
    desc="$page example at line $line"
    txt=$tmp/ex/$id.txt
    log=$tmp/ex/$id.log
    if [ "$kind" = missing ]; then
        echo "$page does not exist" > "$log"
        report fail "$page exists" "$log"
        continue
    fi
    if [ -s "$tmp/ex/$id.err" ]; then
        report fail "$desc" "$tmp/ex/$id.err"
        continue
    fi
    case $kind in
    file)
        cp "$txt" "$tmp/ex/$id.net"
        if check_net "$tmp/ex/$id.net" "$log"; then report ok "$desc"; else report fail "$desc" "$log"; fi
        ;;
    fragment)
        build_fragment "$txt" "$tmp/ex/$id.net"
        if check_net "$tmp/ex/$id.net" "$log"; then report ok "$desc"; else report fail "$desc" "$log"; fi
        ;;
    shell)
        # A private TMPDIR: examples that write files put them there.
        mkdir -p "$tmp/work"
        if TMPDIR="$tmp/work" PATH="$tmp/bin:$PATH" bash -e -o pipefail "$txt" < /dev/null > "$log" 2>&1; then
            report ok "$desc"
        else
            rc=$?
            { echo "exit status $rc; the commands:"; cat "$txt"; echo "their output:"; cat "$log"; } > "$log.why"
            report fail "$desc" "$log.why"
        fi
        ;;
    fragment-skip) report skip "$desc" "fragment-skip: not checkable on its own" ;;
    output) report skip "$desc" "output: shows what a command prints" ;;
    *)
        echo "unknown example kind '$kind' (file, fragment, fragment-skip, shell or output)" > "$log"
        report fail "$desc" "$log"
        ;;
    esac
done < "$tmp/list"

for page in $pages; do
    if [ "$have_groff" = 0 ]; then
        report skip "$page formats without warnings" "groff is not installed"
    elif [ ! -f "$page" ]; then
        echo "$page does not exist" > "$tmp/groff.log"
        report fail "$page formats without warnings" "$tmp/groff.log"
    elif groff -man -ww -z "$page" > "$tmp/groff.log" 2>&1 && [ ! -s "$tmp/groff.log" ]; then
        report ok "$page formats without warnings"
    else
        report fail "$page formats without warnings" "$tmp/groff.log"
    fi
done

[ "$failed" = 0 ]
