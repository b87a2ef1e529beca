#!/usr/bin/env bash
# benches/discovery.sh - how fast does a running lanyard node notice a new
# machine on the LAN?  Prints figures; never asserts on timing.
#
# Two "lab machines" (network namespaces, see tests/netns/lib.sh).  h1 runs
# `lanyard serve --json` for the whole run.  Each round starts a fresh node
# (new data dir = new identity) in h2:
#     t0 = `date +%s%3N` immediately before starting `serve --json` in h2
#     t1 = "ts_ms" of h1's first {"event":"peer_up","id":<h2's id>}
# then stops h2 (SIGTERM, wait for exit) and waits for h1's peer_down for it.
# Rounds with mDNS (the path under test) and, as a baseline, rounds with
# `--no-mdns --peer 10.99.0.11:7717` (manual peer).  h2's identity is created
# with `lanyard id` before t0, so key generation is not part of the figure.
#
# Env: LANYARD_BIN (default target/debug/lanyard under the repo root),
#      ROUNDS (default 10), TARGET_MS (default 1000),
#      PAUSE_S (default 0): seconds between mDNS rounds. mDNS responders multicast an answer at
#      most once a second per record (RFC 6762 §6), so back-to-back rounds alternate between the
#      fast path (h1 answers the newcomer's query) and the slow one (h1 learns of the newcomer
#      from its announcement after ~0.8 s of probing); PAUSE_S=1.5 measures the fast path alone.
#      LANYARD_KEEP_TMP=1 to keep all logs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$HERE/../tests/netns/lib.sh"

NETNS_LOG_TAG=bench/discovery
need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=../tests/netns/lanyard.sh
. "$HERE/../tests/netns/lanyard.sh"
lanyard_bin

ROUNDS=${ROUNDS:-10}
TARGET_MS=${TARGET_MS:-1000}
PORT=7717
UP_TIMEOUT_S=15   # a round without peer_up by then counts as a timeout
DOWN_TIMEOUT_S=30 # how long to wait for peer_down before moving on

netns_setup 2
TMP=$NETNS_TMP
H1_ADDR="$(netns_addr 1):$PORT"
log "lanyard binary: $LANYARD_BIN; $ROUNDS rounds per mode"

lny() { # lny I TIMEOUT_S args...
    local i=$1 t=$2 HENV
    shift 2
    host_env "$i"
    netns_exec "$i" timeout "$t" "${HENV[@]}" "$LANYARD_BIN" "$@"
}

id_of() { # id_of I DATA_DIR
    local out
    out=$(lny "$1" 10 id --json --data-dir "$2") || return 1
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out"
}

netns_on_failure() {
    echo "---- bench failed (exit $1); h1 log tail ----" >&2
    tail -n 30 "$TMP/h1.jsonl" "$TMP/h1.err" >&2 2>/dev/null || true
}

# h1: the long-running node.
id_of 1 "$TMP/h1" >/dev/null || die "h1: 'lanyard id --json' failed"
HENV=()
host_env 1
netns_spawn 1 "$TMP/h1.jsonl" "$TMP/h1.err" \
    "${HENV[@]}" "$LANYARD_BIN" serve --json --nick host1 --data-dir "$TMP/h1" --port "$PORT"
H1_PID=$NETNS_PID
# Ready when its control socket answers; fall back to a fixed pause.
if ! wait_for 10 lny 1 5 peers --json --data-dir "$TMP/h1" >/dev/null 2>&1; then
    log "h1: control socket did not answer within 10s; sleeping 2s instead"
    sleep 2
fi
netns__gone "$H1_PID" && die "h1: 'lanyard serve' exited: $(tail -n 20 "$TMP/h1.err")"

# round MODE R : one measurement; sets RESULT to the latency in ms or
# "timeout".  (Not run in $(...): h2's serve must stay a child of this shell.)
round() {
    local mode=$1 r=$2 dir="$TMP/h2-$1-$2" id2 t0 t1 pid rc extra=()
    [ "$mode" = manual ] && extra=(--no-mdns --peer "$H1_ADDR")
    id2=$(id_of 2 "$dir") || die "h2: 'lanyard id --json' failed (round $mode/$r)"
    host_env 2
    t0=$(date +%s%3N)
    netns_spawn 2 "$dir.jsonl" "$dir.err" \
        "${HENV[@]}" "$LANYARD_BIN" serve --json --nick host2 --data-dir "$dir" --port "$PORT" "${extra[@]}"
    pid=$NETNS_PID
    if t1=$(jsonl_wait "$TMP/h1.jsonl" peer_up "$id2" "$UP_TIMEOUT_S") && [[ $t1 =~ ^[0-9]+$ ]]; then
        RESULT=$((t1 - t0))
    else
        log "round $mode/$r: no peer_up for $id2 within ${UP_TIMEOUT_S}s (h2 stderr: $(tail -n 3 "$dir.err" | tr '\n' ' '))"
        RESULT=timeout
    fi
    rc=0
    netns_stop "$pid" 10 || rc=$?
    # anything else left in h2 (there should be nothing)
    local left
    left=$(netns_pids 2)
    if [ -n "$left" ]; then
        log "round $mode/$r: stray processes in h2: ${left//$'\n'/ }; killing"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    if ! jsonl_wait "$TMP/h1.jsonl" peer_down "$id2" "$DOWN_TIMEOUT_S" >/dev/null; then
        log "round $mode/$r: h1 showed no peer_down for $id2 within ${DOWN_TIMEOUT_S}s (h2 exit status $rc)"
    fi
}

# summarize LABEL VALUES... : prints the rounds, median, min, max.
summarize() {
    python3 - "$@" <<'PY'
import sys, statistics
label, vals = sys.argv[1], sys.argv[2:]
ok = [int(v) for v in vals if v != "timeout"]
print("%s rounds (ms): %s" % (label, " ".join(vals)))
if not ok:
    print("%s: no successful round" % label)
    sys.exit(0)
med = statistics.median(ok)
print("%s: median %.0f ms, min %d ms, max %d ms, %d/%d rounds ok"
      % (label, med, min(ok), max(ok), len(ok), len(vals)))
PY
}

median_of() {
    python3 -c '
import sys, statistics
ok = [int(v) for v in sys.argv[1:] if v != "timeout"]
print("%.0f" % statistics.median(ok) if ok else "n/a")' "$@"
}

RESULT=""
declare -a MDNS MANUAL
for ((r = 1; r <= ROUNDS; r++)); do
    sleep "${PAUSE_S:-0}"
    round mdns "$r"
    MDNS+=("$RESULT")
    log "mdns   round $r: $RESULT"
done
for ((r = 1; r <= ROUNDS; r++)); do
    round manual "$r"
    MANUAL+=("$RESULT")
    log "manual round $r: $RESULT"
done

netns__gone "$H1_PID" && log "WARNING: h1's serve exited during the run"

echo "== lanyard discovery latency: new node in h2 -> peer_up in h1 =="
summarize "mdns" "${MDNS[@]}"
summarize "manual (--no-mdns --peer $H1_ADDR)" "${MANUAL[@]}"
med_mdns=$(median_of "${MDNS[@]}")
med_manual=$(median_of "${MANUAL[@]}")
if [ "$med_mdns" = n/a ]; then
    echo "target ≤ $TARGET_MS ms: missed (no successful mDNS round)"
elif ((med_mdns <= TARGET_MS)); then
    echo "target ≤ $TARGET_MS ms: met (mDNS median $med_mdns ms)"
else
    echo "target ≤ $TARGET_MS ms: missed (mDNS median $med_mdns ms)"
fi
if [ "$med_mdns" != n/a ] && [ "$med_manual" != n/a ] && ((med_manual > 0)); then
    echo "ratio mdns/manual median: $(python3 -c "print('%.2f' % ($med_mdns / $med_manual))") ($med_mdns ms / $med_manual ms)"
else
    echo "ratio mdns/manual median: n/a ($med_mdns / $med_manual)"
fi

netns_stop "$H1_PID" 5 || true
netns_teardown
