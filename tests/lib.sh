# Shell helpers the TAP scripts of tests/ source (after cd "$srcdir").

# report ok|fail|skip DESCRIPTION [DETAIL]: the next TAP line, numbered by
# $n (the script sets n=0 and failed=0 first). A failure counts in $failed
# and shows DETAIL, a file, as comments through the filter $tap_detail
# ("tail -40" unless the script sets another); a skip's DETAIL is its reason.
report() {
    n=$((n + 1))
    case $1 in
    ok) echo "ok $n - $2" ;;
    skip) echo "ok $n - $2 # SKIP ${3:-}" ;;
    *)
        failed=$((failed + 1))
        echo "not ok $n - $2"
        if [ -n "${3:-}" ] && [ -r "$3" ]; then sed 's/^/# /' "$3" | ${tap_detail:-tail -40}; fi
        ;;
    esac
}

# True under CI (CI set, and not to "false" or "0"), where nothing may be skipped.
in_ci() {
    case ${CI:-} in "" | false | 0) return 1 ;; *) return 0 ;; esac
}

# skip_all REASON: the whole script cannot run here. Outside CI a TAP skip
# with the reason; under CI an error, since a CI run that checks nothing
# must not pass. Exits either way.
skip_all() {
    if in_ci; then
        echo "Bail out! CI is set, so this must not be skipped: $1"
        exit 99
    fi
    echo "1..0 # SKIP $1"
    exit 0
}

# need_fashion_mnist DIR: all four files of Fashion-MNIST are readable in DIR, or skip_all.
need_fashion_mnist() {
    local f
    for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
        [ -r "$1/$f" ] || skip_all "no Fashion-MNIST: $1/$f is missing (scripts/install-deps installs dataset-fashion-mnist)"
    done
}
