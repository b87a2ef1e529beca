#!/usr/bin/env bash
# tests/netns/names.sh - names and keys that can't be taken, across machines.
#
# Three "lab machines" (network namespaces on a private bridge, see lib.sh), each running
# `lanyard serve --json` with mDNS ON (the multicast never leaves our namespaces); h1 also
# names h2 with `--peer`.
#   1. h3 calls itself by h2's short id. From h1, `lanyard say <h2's short id>` reaches h2 and
#      not h3; `lanyard peers` shows h3's nick with a disambiguator.
#   2. h2's machine starts over with a new identity on the same port. h1 refuses the new key at
#      the `--peer` address with a warning naming both fingerprints; `say HOST:PORT` fails
#      and says why, and the new node gets no line.
#   3. `lanyard forget <old id>` on h1; the new key is pinned and `say HOST:PORT` reaches it.
#
# Env: LANYARD_BIN (default: target/debug/lanyard under the repo root),
#      LANYARD_REQUIRE_NETNS=1 (fail instead of skip without root/netns),
#      LANYARD_KEEP_TMP=1 (keep the scratch dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=names
need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

N=3
PORT=7717
WAIT_S=$PATIENCE         # bound on anything that should happen at once (a guard, not a measurement)
CMD_S=$((PATIENCE + 30)) # kills a command that hangs; longer than any wait inside it

netns_setup "$N"
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN"

LOGS=()
netns_on_failure() { dump_logs names "$1"; }

json_field() {
    python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

declare -a ID FP
for ((i = 1; i <= N; i++)); do
    out=$(lny "$i" "$CMD_S" id --json) || die "h$i: 'lanyard id --json' failed"
    ID[i]=$(json_field id <<<"$out")
    FP[i]=$(json_field fingerprint <<<"$out")
    log "h$i: id ${ID[i]}"
done
SHORT2=${ID[2]:0:8}
H2="$(netns_addr 2):$PORT"

serve_start 1 h1 --peer "$H2"
LOGS+=(h1)
serve_start 2 h2
LOGS+=(h2)
# h3 goes by h2's short id (serve_start names every host hostI, so it is spawned by hand).
host_env 3
netns_spawn 3 "$TMP/h3.jsonl" "$TMP/h3.err" "${HENV[@]}" "$LANYARD_BIN" serve --json --nick "$SHORT2" --port "$PORT"
H3_PID=$NETNS_PID
LOGS+=(h3)

expect_event "$TMP/h1.jsonl" "$WAIT_S" event=peer_up id="${ID[2]}" >/dev/null || die "h1 never saw h2 up"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=peer_up id="${ID[3]}" nick="$SHORT2" >/dev/null || die "h1 never saw h3 up"
log "ok: h1 sees h2 and h3 (called $SHORT2)"

# 1. The id wins over a nick shaped like it.
lny 1 "$CMD_S" say --timeout "$WAIT_S" "$SHORT2" "for h2" 2>"$TMP/cmd-say1.err" || die "h1: 'say $SHORT2' failed: $(cat "$TMP/cmd-say1.err")"
expect_event "$TMP/h2.jsonl" "$WAIT_S" event=chat_received from="${ID[1]}" text="for h2" >/dev/null || die "h2 never got the line typed to its id"
[ "$(count_events "$TMP/h3.jsonl" event=chat_received)" = 0 ] || die "h3 got a line typed to h2's id"
lny 1 "$CMD_S" peers >"$TMP/peers1.txt" 2>"$TMP/cmd-peers1.err" || die "h1: 'peers' failed"
grep -E "^${SHORT2}[@#]" "$TMP/peers1.txt" >/dev/null || die "h1: h3's id-shaped nick is listed bare: $(cat "$TMP/peers1.txt")"
log "ok: the line typed to h2's short id reached h2 only; h3 is listed as $(grep -oE "^${SHORT2}[@#][^ ]+" "$TMP/peers1.txt")"

# 2. h2's machine comes back with a new identity on the same port.
netns_stop "${SERVE_PID[2]}" 5 || true
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=peer_down id="${ID[2]}" >/dev/null || die "h1 never saw h2 down"
out=$(lny 2 "$CMD_S" id --json --data-dir "$TMP/h2new") || die "h2: 'id' on the new data dir failed"
NEW_ID=$(json_field id <<<"$out")
NEW_FP=$(json_field fingerprint <<<"$out")
serve_start 2 h2new --data-dir "$TMP/h2new"
LOGS+=(h2new)
warning=$(expect_event "$TMP/h1.jsonl" "$WAIT_S" event=warning) || die "h1: no warning about the changed key at $H2"
for want in "$H2" "${FP[2]}" "$NEW_FP" "lanyard forget $H2"; do
    grep -qF -- "$want" <<<"$warning" || die "h1: the warning does not name '$want': $warning"
done
if lny 1 "$CMD_S" say --timeout 5 "$H2" "are you h2?" 2>"$TMP/cmd-say2.err"; then
    die "h1: 'say $H2' to a changed key exited 0"
fi
grep -q "changed" "$TMP/cmd-say2.err" || die "h1: unclear error for a changed key: $(cat "$TMP/cmd-say2.err")"
: >"$TMP/cmd-say2.err" # expected failure: not a diagnostic
[ "$(count_events "$TMP/h2new.jsonl" event=chat_received)" = 0 ] || die "the new key got a line meant for h2's address"
log "ok: the new key at $H2 was refused, with both fingerprints"

# 3. Forgetting the old peer lets the new key in at that address.
lny 1 "$CMD_S" forget "$SHORT2" 2>"$TMP/cmd-forget.err" >/dev/null || die "h1: 'forget $SHORT2' failed: $(cat "$TMP/cmd-forget.err")"
lny 1 "$CMD_S" say --timeout "$WAIT_S" "$H2" "hello, new key" 2>"$TMP/cmd-say3.err" || die "h1: 'say $H2' after forget failed: $(cat "$TMP/cmd-say3.err")"
expect_event "$TMP/h2new.jsonl" "$WAIT_S" event=chat_received from="${ID[1]}" text="hello, new key" >/dev/null ||
    die "the new key never got the line after forget"
[ "$NEW_ID" != "${ID[2]}" ] || die "the new data dir has the old id"
log "ok: after forget, $H2 is pinned to ${NEW_ID:0:8}"

netns_stop "$H3_PID" 5 || true
for ((i = 1; i <= 2; i++)); do
    netns_stop "${SERVE_PID[i]}" 5 || true
done
netns_check_drops
netns_teardown

echo "names: ok"
