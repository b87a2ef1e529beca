#!/usr/bin/env bash
# tests/netns/liveness.sh - a peer that leaves is reported down: within 3 s after a clean exit,
# within 15 s when it vanishes (kill -9) or its link is cut. Three namespaces, mDNS on inside them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
need_root
lanyard_bin
netns_setup 3
T=$NETNS_TMP
declare -a ID=()

netns_on_failure() {
    echo "---- liveness: FAILED (exit $1) ----" >&2
    for i in 1 2 3; do
        echo "== h$i events" >&2
        cat "$T/h$i.jsonl" >&2 2>/dev/null || true
        tail -n 20 "$T/h$i.err" >&2 2>/dev/null || true
    done
}

# down_within FILE ID SINCE_MS LIMIT_MS WHAT: a peer_down for ID in FILE, no later than the limit.
down_within() {
    local ts
    ts=$(jsonl_wait "$1" peer_down "$2" $(($4 / 1000 + 5))) || die "$5: no peer_down at all"
    local took=$((ts - $3))
    log "$5: peer_down after ${took} ms (limit $4 ms)"
    ((took <= $4)) || die "$5: too slow"
}

for i in 1 2 3; do serve_start "$i"; done
for i in 1 2 3; do ID[i]=$(id_in "$i"); done
for i in 1 2 3; do
    for j in 1 2 3; do
        ((i == j)) || jsonl_wait "$T/h$i.jsonl" peer_up "${ID[j]}" 10 >/dev/null || die "h$i never saw h$j"
    done
done
log "all three up"

t0=$(netns_now_ms)
netns_stop "${SERVE_PID[2]}" 5 || true
down_within "$T/h1.jsonl" "${ID[2]}" "$t0" 3000 "clean exit"

t0=$(netns_now_ms)
kill -KILL "${SERVE_PID[3]}"
down_within "$T/h1.jsonl" "${ID[3]}" "$t0" 15000 "kill -9"

# count EVENT ID FILE: how many such lines so far.
count() { grep -c "\"event\":\"$1\".*\"id\":\"$2\"" "$3" || true; }
# wait_more EVENT ID FILE BEFORE LIMIT_S: until there are more than BEFORE such lines.
wait_more() {
    local t0
    t0=$(netns_now_ms)
    until (($(count "$1" "$2" "$3") > $4)); do
        (($(netns_now_ms) - t0 < $5 * 1000)) || return 1
        sleep 0.05
    done
}

# Back up, then its cable is pulled.
ups=$(count peer_up "${ID[2]}" "$T/h1.jsonl")
downs=$(count peer_down "${ID[2]}" "$T/h1.jsonl")
serve_start 2
wait_more peer_up "${ID[2]}" "$T/h1.jsonl" "$ups" 10 || die "h2 did not come back"
log "h2 is back"
t0=$(netns_now_ms)
netns_exec 2 ip link set eth0 down
wait_more peer_down "${ID[2]}" "$T/h1.jsonl" "$downs" 20 || die "link cut: no peer_down within 20 s"
ts=$(grep "\"event\":\"peer_down\".*\"id\":\"${ID[2]}\"" "$T/h1.jsonl" | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ts_ms"])')
log "link cut: peer_down after $((ts - t0)) ms (limit 15000 ms)"
((ts - t0 <= 15000)) || die "link cut: too slow"
echo "liveness: ok"
