#!/usr/bin/env bash
# fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...] - a bounded fuzzing run (default: 60 s for each
# target, one after another): builds the targets, runs each from the seed corpus in
# fuzz/corpus/<target>/ (read only: what the fuzzer finds goes to a scratch copy, so the
# repository's corpus stays small), and prints execs, coverage and the result per target.
#
# Exit status: 0 when no target crashed, 1 when one did (its input is in
# fuzz/artifacts/<target>/, replayed with `cargo +nightly fuzz run <target> <file>`), 2 when the
# build failed. Without a nightly toolchain or cargo-fuzz it prints SKIP and exits 0.
# Not part of `cargo test` (too slow); a person or a CI job runs it.
set -uo pipefail

secs=${1:-60}
shift $(($# > 0 ? 1 : 0))
case $secs in '' | *[!0-9]*)
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIP fuzz: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "SKIP fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
echo "building ${#targets[*]} targets: ${targets[*]}"
if ! cargo +nightly fuzz build >build.log 2>&1; then
    tail -n 30 build.log
    echo "FAIL fuzz: the targets do not build (fuzz/build.log)"
    exit 2
fi
rm -f build.log

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
final_stat() { grep -o "stat::$1: *[0-9]*" "$2" | grep -o '[0-9]*$' | tail -n 1; }

crashed=0
printf '%-13s %6s %12s %9s %6s %7s  %s\n' target seconds execs execs/s cov rss_mb result
for t in "${targets[@]}"; do
    case $t in
    names | offer | share) dict=dict/names.dict ;;
    *) dict=dict/messages.dict ;;
    esac
    mkdir -p "$scratch/$t" "corpus/$t"
    log=$scratch/$t.log
    start=$SECONDS
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a few hundred MB is a leak.
    cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$dict" >"$log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    execs=$(final_stat number_of_executed_units "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*')
    rss=$(final_stat peak_rss_mb "$log")
    if ((rc == 0)); then
        result=ok
    else
        crashed=1
        artifact=$(grep -o 'artifacts/[^ ]*' "$log" | head -n 1)
        result="CRASH (exit $rc) ${artifact:-see log}"
    fi
    printf '%-13s %6s %12s %9s %6s %7s  %s\n' "$t" "$took" "${execs:-?}" \
        "$((${execs:-0} / (took > 0 ? took : 1)))" "${cov:-?}" "${rss:-?}" "$result"
    if ((rc != 0)); then
        grep -E -m 12 'panicked|ERROR|SUMMARY|Test unit written|Output of' "$log" | sed 's/^/    /'
        mkdir -p artifacts && cp "$log" "artifacts/$t.log" && echo "    full log: fuzz/artifacts/$t.log"
    fi
done
exit $crashed
