#!/usr/bin/env bash
# tests/netns/lab.sh - a computer lab: 40 machines start lanyard 0.3 s apart (people arriving),
# mDNS on, and every one must come to list all 39 others online.
#
# Checked from each node's `serve --json` events (tests/netns/lab.py: a node lists a peer while
# its last peer_up/peer_down for it is a peer_up) and, for a few hosts, from `lanyard peers
# --json` through the running node's control socket.  Then the lab itself must have dropped no
# packet (netns_check_drops): a send the one-kernel lab drops would pass for a discovery bug.
# Every wait is bounded by PATIENCE (a guard against a hang, never the pass criterion).
#
# Env: LANYARD_BIN (default target/release/lanyard, as in CI: 40 debug nodes are more than
#      2 cores carry, they never converge), LAB_N (default 40; 2..120), STAGGER_S (default 0.3),
#      PATIENCE, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1 (see lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=lab
need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_release_bin

N=${LAB_N:-40}
STAGGER_S=${STAGGER_S:-0.3}
PORT=7717
LABPY="$HERE/lab.py"
CHECK_HOSTS=(1 $(((N + 1) / 2)) "$N") # the first, a middle and the last to start

netns_setup "$N"
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN; $N hosts, ${STAGGER_S}s apart"

netns_on_failure() {
    local i k c
    echo "---- lab: FAILED (exit $1); diagnostics ----" >&2
    for ((i = 1; i <= N; i++)); do
        if [ -n "${SERVE_PID[i]:-}" ] && netns__gone "${SERVE_PID[i]}"; then
            echo "== h$i: serve (pid ${SERVE_PID[i]}) has EXITED; stderr:" >&2
            tail -n 20 "$TMP/h$i.err" >&2 2>/dev/null || true
        fi
    done
    echo "== how many others each host lists (host:count)" >&2
    python3 "$LABPY" report "$TMP" "$N" "$TMP/starts" 2>&1 | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(" ".join("h%d:%s" % (i, c) for i, c in enumerate(r["counts"], 1)))
print("histogram", r["histogram"], "| complete", r["complete"], "| peer_up", r["ups"], "| peer_down", r["downs"],
      "| warnings", r["warnings"], "| lagged", r["lagged"], "| no listening line:", r["unknown_ids"])' >&2 || true
    netns_drops || true
    echo "== drops: $NETNS_DROPS${NETNS_DROPS_WHY:+; $NETNS_DROPS_WHY}" >&2
    python3 "$LABPY" lonely "$TMP" "$N" 2 2>/dev/null | while read -r k c; do
        echo "== loneliest h$k (lists $c): tail of h$k.jsonl, h$k.err" >&2
        tail -n 25 "$TMP/h$k.jsonl" >&2 2>/dev/null || true
        tail -n 25 "$TMP/h$k.err" >&2 2>/dev/null || true
    done
    for i in "${CHECK_HOSTS[@]}"; do
        [ -e "$TMP/peers$i.why" ] && echo "== h$i 'peers --json': $(cat "$TMP/peers$i.why")" >&2
    done
    echo "---- end of diagnostics ----" >&2
}

serve_alive() {
    local i
    for ((i = 1; i <= N; i++)); do
        netns__gone "${SERVE_PID[i]}" && die "h$i: 'lanyard serve' exited: $(tail -n 5 "$TMP/h$i.err")"
    done
    return 0
}

# peers_ok I : host I's `lanyard peers --json` (through its node's control socket) lists every
# other host online.
peers_ok() {
    local i=$1
    lny "$i" "$PATIENCE" peers --json >"$TMP/peers$i.out" 2>"$TMP/peers$i.err" || {
        echo "exit $?: $(tail -n 3 "$TMP/peers$i.err")" >"$TMP/peers$i.why"
        return 1
    }
    python3 "$LABPY" peers "$TMP" "$N" "$i" "$TMP/peers$i.out" >"$TMP/peers$i.why"
}

# 1. Identities first, as on machines that ran lanyard before (not part of any figure).
for ((i = 1; i <= N; i++)); do
    lny "$i" "$PATIENCE" id --json >/dev/null 2>"$TMP/id$i.err" || die "h$i: 'lanyard id' failed: $(tail -n 3 "$TMP/id$i.err")"
done

# 2. The machines start one after another.
: >"$TMP/starts"
for ((i = 1; i <= N; i++)); do
    ((i == 1)) || sleep "$STAGGER_S"
    echo "$i $(netns_now_ms)" >>"$TMP/starts"
    serve_start "$i" 2>>"$TMP/starts.log"
done
log "started $N nodes"
serve_alive

# 3. Everyone lists everyone (events), bounded by PATIENCE.
python3 "$LABPY" wait "$TMP" "$N" "$PATIENCE" || {
    serve_alive
    die "not every host lists all $((N - 1)) others within ${PATIENCE}s"
}
serve_alive
log "every host lists all $((N - 1)) others: $(python3 "$LABPY" report "$TMP" "$N" "$TMP/starts" | python3 -c '
import json, sys
r = json.load(sys.stdin)
s = lambda ms: "?" if ms is None else "%.1f s" % (ms / 1000)
print("%s after the first start (starts spread over %s); a node lists all others %s after its own start (median), %s at most; %d peer_up, %d peer_down lines"
      % (s(r["converge_ms"]), s(r["start_span_ms"]), s(r["node_median_ms"]), s(r["node_max_ms"]), r["ups"], r["downs"]))')"

# 4. The same through the control socket of a few nodes.
for i in "${CHECK_HOSTS[@]}"; do
    wait_for "$PATIENCE" peers_ok "$i" || die "h$i: 'lanyard peers --json': $(cat "$TMP/peers$i.why")"
    log "h$i: peers --json $(cat "$TMP/peers$i.why")"
done

# 5. Nothing was dropped by the lab itself.
serve_alive
netns_check_drops

netns_teardown
echo "lab: ok"
