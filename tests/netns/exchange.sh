#!/usr/bin/env bash
# tests/netns/exchange.sh - peer exchange: one path into the lab is enough.
#
# Six lab machines on one bridge. h1..h3 run with mDNS (they find each other by it); h4..h6 run
# with --no-mdns, and each knows only ONE address: h4 and h5 are given `--peer h3`, h6 is given
# `--peer h4`. Nobody else is told of anybody. Then every machine must list all five others
# online: h4..h6 learn of h1, h2 (and each other) from the lists their one peer sends, and h1, h2
# learn of them by their dials - also the ones no multicast could have told them of.
#
# Env: LANYARD_BIN (default target/debug/lanyard), LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
need_root
command -v python3 >/dev/null || die "python3 not found"
lanyard_bin

N=6
PORT=7717
netns_setup "$N"
T=$NETNS_TMP

netns_on_failure() {
    local i
    echo "---- exchange: FAILED (exit $1) ----" >&2
    for ((i = 1; i <= N; i++)); do
        echo "== h$i: events" >&2
        grep -E '"event":"(peer_up|peer_down|warning)"' "$T/h$i.jsonl" >&2 2>/dev/null || true
        echo "== h$i: stderr" >&2
        tail -n 20 "$T/h$i.err" >&2 2>/dev/null || true
    done
}

for ((i = 1; i <= N; i++)); do id_in "$i" >/dev/null; done # identities made before the clock starts
for i in 1 2 3; do serve_start "$i"; done
serve_start 4 h4 --no-mdns --peer "$(netns_addr 3):$PORT"
serve_start 5 h5 --no-mdns --peer "$(netns_addr 3):$PORT"
serve_start 6 h6 --no-mdns --peer "$(netns_addr 4):$PORT"
log "h1-h3 with mDNS; h4, h5 know only h3; h6 knows only h4"

# The lab's state from every node's events (lab.py: a node lists a peer while its last
# peer_up/peer_down for it is an up).
t0=$(netns_now_ms)
python3 "$HERE/lab.py" wait "$T" "$N" "$PATIENCE" || {
    python3 "$HERE/lab.py" lonely "$T" "$N" >&2 || true
    die "not every host lists all $((N - 1)) others online"
}
log "every host lists the $((N - 1)) others after $(($(netns_now_ms) - t0)) ms"

# What a person sees: h6 (told of h4 alone) lists every other host through the control socket,
# each online with its nick and its real address - learnt second hand, then proven by its key.
lny 6 "$PATIENCE" peers --json >"$T/peers6.json"
why=$(python3 "$HERE/lab.py" peers "$T" "$N" 6 "$T/peers6.json") || die "h6's peer list is wrong: $why"
netns_check_drops
echo "exchange: ok"
