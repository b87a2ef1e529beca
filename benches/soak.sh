#!/usr/bin/env bash
# benches/soak.sh - the chaos soak of tests/netns/soak.sh (same engine, tests/netns/soak.py) for as
# long as you like: SOAK_S seconds of chaos (default 600), release build by default (as a lab
# runs it). It prints what the test prints - every check, PASS or FAIL, and the figures: the work
# done (sends by kind, gets, chat lines, cancels, stops, kills, faults), and per node RSS and open
# fds (median of the first and the last minute for every process that ran through both, and the
# peak of every process) - then the conditions. Exit status: the checks'.
#
# Env: SOAK_S (600), SOAK_SEED, LANYARD_BIN (default target/release/lanyard; SOAK_RELEASE=0 for
#      target/debug/lanyard), and everything tests/netns/soak.sh reads (BIG_MIB, SOAK_LINK_MBIT,
#      SAMPLE_S, PATIENCE, LANYARD_KEEP_TMP=1 ...).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

export SOAK_S=${SOAK_S:-600}
export SOAK_RELEASE=${SOAK_RELEASE:-1}
export NETNS_LOG_TAG=bench/soak
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rc=0
bash "$REPO/tests/netns/soak.sh" || rc=$?
echo
echo "conditions: $started; ${SOAK_S}s of chaos; binary ${LANYARD_BIN:-target/$([ "$SOAK_RELEASE" = 1 ] && echo release || echo debug)/lanyard}" \
    "($(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')); $(nproc) cores," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r);" \
    "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$rc"
