#!/usr/bin/env bash
# Memory after bursts, for each allocator candidate (prints figures, never fails on them): the
# release binary built with jemalloc (the default feature, background purging thread) and with
# glibc's malloc (`--no-default-features`; as is, and with MALLOC_ARENA_MAX=2), each measured
# by `benches/memory.rs` (a chat flood from 128 keys on 8 addresses, four accepted offers of
# 100,000 names, a 1 GiB transfer; RSS before, peak, and 30 s after each). Linux only; about 4
# minutes per candidate plus a release build for each feature set.
#
#   bash benches/memory.sh                 # every candidate
#   CANDIDATES="glibc jemalloc" bash benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

candidates=${CANDIDATES:-"jemalloc glibc glibc-arenas-2"}
scratch=$(mktemp -d /tmp/lanyard-memory.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

binary() { # candidate -> path of its release binary, built once
    local features=""
    case $1 in
        glibc | glibc-arenas-2) features="--no-default-features" ;;
        jemalloc) features="" ;;
        *) echo "unknown candidate $1" >&2; exit 2 ;;
    esac
    local out="$scratch/lanyard-${1%-arenas-2}"
    if [[ ! -x $out ]]; then
        # shellcheck disable=SC2086
        cargo build --release --quiet --bin lanyard $features >&2
        cp target/release/lanyard "$out"
    fi
    echo "$out"
}

# The bench itself, once (it runs each candidate's binary as the node under test).
cargo bench --bench memory --no-run --quiet 2>/dev/null
bench=$(ls -t target/release/deps/memory-* | grep -v '\.d$' | head -1)

for c in $candidates; do
    bin=$(binary "$c")
    echo "== $c"
    if [[ $c == glibc-arenas-2 ]]; then
        MALLOC_ARENA_MAX=2 LANYARD_BIN=$bin "$bench"
    else
        LANYARD_BIN=$bin "$bench"
    fi
done
