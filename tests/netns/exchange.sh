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
declare -a ID=()

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

# start I ARGS...: `serve --json` in host I with extra flags.
start() {
    local i=$1 HENV
    shift
    host_env "$i"
    netns_spawn "$i" "$T/h$i.jsonl" "$T/h$i.err" \
        "${HENV[@]}" "$LANYARD_BIN" serve --json --nick "host$i" --port "$PORT" "$@"
    SERVE_PID[i]=$NETNS_PID
}

for ((i = 1; i <= N; i++)); do ID[i]=$(id_in "$i"); done
for i in 1 2 3; do start "$i"; done
start 4 --no-mdns --peer "$(netns_addr 3):$PORT"
start 5 --no-mdns --peer "$(netns_addr 3):$PORT"
start 6 --no-mdns --peer "$(netns_addr 4):$PORT"
log "h1-h3 with mDNS; h4, h5 know only h3; h6 knows only h4"

# online_all I: host I's event log says every other host is up now (last up/down per id).
online_all() {
    python3 - "$T/h$1.jsonl" "$@" <<'PY'
import json, sys
path, me, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
up = {}
try:
    for line in open(path):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("event") in ("peer_up", "peer_down"):
            up[o.get("id")] = o["event"] == "peer_up"
except FileNotFoundError:
    pass
sys.exit(0 if all(up.get(i) for i in ids) else 1)
PY
}

t0=$(netns_now_ms)
for ((i = 1; i <= N; i++)); do
    others=()
    for ((j = 1; j <= N; j++)); do ((i == j)) || others+=("${ID[j]}"); done
    wait_for "$PATIENCE" online_all "$i" "${others[@]}" || die "h$i does not list all $((N - 1)) others online"
done
log "every host lists the $((N - 1)) others after $(($(netns_now_ms) - t0)) ms"

# What a person sees: h6 (told of h4 alone) lists h1 through the control socket, with the
# address h1 really has - learnt second hand, then proven by h1's own key.
lny 6 "$PATIENCE" peers --json >"$T/peers6.json"
python3 - "$T/peers6.json" "${ID[1]}" "$(netns_addr 1)" <<'PY' || die "h6's peer list is wrong: $(cat "$T/peers6.json")"
import json, sys
peers = json.load(open(sys.argv[1]))
p = [p for p in peers if p["id"] == sys.argv[2]]
assert p and p[0]["online"] and p[0]["nick"] == "host1" and p[0]["addr"].startswith(sys.argv[3] + ":"), p
PY
netns_check_drops
echo "exchange: ok"
