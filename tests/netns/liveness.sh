#!/usr/bin/env bash
# tests/netns/liveness.sh - a peer that leaves is reported down, and by the right mechanism: a
# clean exit by its goodbye ("left"), kill -9 by the connection closing, a cut link by the
# keepalive ("no sign of life"). Three namespaces, mDNS on inside them. Each is checked by its
# reason and by how long it took, against the README's promise with room for a loaded machine:
# a program that quits is down "within milliseconds" (bound: LIVENESS_QUIT_MS, 3000 ms), a
# vanished machine "within 11 s" (bound: LIVENESS_CUT_MS, 20000 ms). PATIENCE only stops a hang.
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
QUIT_MS=${LIVENESS_QUIT_MS:-3000}
CUT_MS=${LIVENESS_CUT_MS:-20000}

netns_on_failure() {
    echo "---- liveness: FAILED (exit $1) ----" >&2
    for i in 1 2 3; do
        echo "== h$i events" >&2
        cat "$T/h$i.jsonl" >&2 2>/dev/null || true
        tail -n 20 "$T/h$i.err" >&2 2>/dev/null || true
    done
}

# nth_event FILE EVENT ID N: wait (up to PATIENCE) until FILE has N lines with this event for
# ID; print the Nth as "TS_MS<tab>REASON".
nth_event() {
    python3 - "$@" "$PATIENCE" <<'PY'
import json, sys, time
path, event, ident, n, patience = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
deadline = time.monotonic() + patience
while True:
    seen = []
    try:
        for line in open(path, "rb"):
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict) and o.get("event") == event and o.get("id") == ident:
                seen.append(o)
    except FileNotFoundError:
        pass
    if len(seen) >= n:
        print("%s\t%s" % (seen[n - 1].get("ts_ms"), seen[n - 1].get("reason", "")))
        sys.exit(0)
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.05)
PY
}

# down_reason ID N SINCE_MS WHAT BOUND_MS: h1's Nth peer_down for ID; fails when it came more
# than BOUND_MS after SINCE_MS; prints its reason.
down_reason() {
    local got ts reason took
    got=$(nth_event "$T/h1.jsonl" peer_down "$1" "$2") || die "$4: no peer_down within ${PATIENCE}s"
    ts=${got%%$'\t'*} reason=${got#*$'\t'}
    took=$((ts - $3))
    log "$4: peer_down after $took ms (bound $5 ms): $reason"
    ((took <= $5)) || die "$4: reported down after $took ms, over the bound of $5 ms"
    printf '%s\n' "$reason"
}

for i in 1 2 3; do serve_start "$i"; done
for i in 1 2 3; do ID[i]=$(id_in "$i"); done
for i in 1 2 3; do
    for j in 1 2 3; do
        ((i == j)) || jsonl_wait "$T/h$i.jsonl" peer_up "${ID[j]}" "$PATIENCE" >/dev/null || die "h$i never saw h$j"
    done
done
log "all three up"

t0=$(netns_now_ms)
netns_stop "${SERVE_PID[2]}" 5 || true
reason=$(down_reason "${ID[2]}" 1 "$t0" "clean exit" "$QUIT_MS")
[ "$reason" = left ] || die "clean exit: reason '$reason', want 'left' (the goodbye)"

t0=$(netns_now_ms)
kill -KILL "${SERVE_PID[3]}"
reason=$(down_reason "${ID[3]}" 1 "$t0" "kill -9" "$QUIT_MS")
case $reason in
"no sign of life"*) die "kill -9: found only by the silence limit ('$reason'), not by the connection closing" ;;
esac

# Back up, then its cable is pulled.
serve_start 2
nth_event "$T/h1.jsonl" peer_up "${ID[2]}" 2 >/dev/null || die "h2 did not come back"
log "h2 is back"
t0=$(netns_now_ms)
netns_exec 2 ip link set eth0 down
reason=$(down_reason "${ID[2]}" 2 "$t0" "link cut" "$CUT_MS")
case $reason in
"no sign of life"*) ;;
*) die "link cut: reason '$reason', want the keepalive's 'no sign of life'" ;;
esac
netns_check_drops
echo "liveness: ok"
