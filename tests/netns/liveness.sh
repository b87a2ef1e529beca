#!/usr/bin/env bash
# tests/netns/liveness.sh - a peer that leaves is reported down, and by the right mechanism: a
# clean exit by its goodbye ("left"), kill -9 by the connection closing, a cut link by the
# keepalive ("no sign of life"). Three namespaces, mDNS on inside them. How long each took is
# logged; the check is the reason, so a loaded machine cannot fail it (PATIENCE only stops a hang).
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

# down_reason ID N SINCE_MS WHAT: h1's Nth peer_down for ID; logs how long it took after SINCE_MS
# and prints its reason.
down_reason() {
    local got ts reason
    got=$(nth_event "$T/h1.jsonl" peer_down "$1" "$2") || die "$4: no peer_down within ${PATIENCE}s"
    ts=${got%%$'\t'*} reason=${got#*$'\t'}
    log "$4: peer_down after $((ts - $3)) ms: $reason"
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
reason=$(down_reason "${ID[2]}" 1 "$t0" "clean exit")
[ "$reason" = left ] || die "clean exit: reason '$reason', want 'left' (the goodbye)"

t0=$(netns_now_ms)
kill -KILL "${SERVE_PID[3]}"
reason=$(down_reason "${ID[3]}" 1 "$t0" "kill -9")
case $reason in
"no sign of life"*) die "kill -9: found only by the silence limit ('$reason'), not by the connection closing" ;;
esac

# Back up, then its cable is pulled.
serve_start 2
nth_event "$T/h1.jsonl" peer_up "${ID[2]}" 2 >/dev/null || die "h2 did not come back"
log "h2 is back"
t0=$(netns_now_ms)
netns_exec 2 ip link set eth0 down
reason=$(down_reason "${ID[2]}" 2 "$t0" "link cut")
case $reason in
"no sign of life"*) ;;
*) die "link cut: reason '$reason', want the keepalive's 'no sign of life'" ;;
esac
netns_check_drops
echo "liveness: ok"
