#!/usr/bin/env bash
# tests/netns/chat.sh - multi-host chat test for lanyard.
#
# Two "lab machines" (network namespaces on a private bridge, see lib.sh),
# each running `lanyard serve --json` with mDNS ON (the multicast never leaves
# our namespaces).  From h1, one-shot commands hand their work to h1's running
# node over its control socket:
#   1. `lanyard say host2 TEXT` exits 0, and h2's serve --json prints a
#      chat_received with h1's id, nick and the text; h1's prints chat_delivered.
#   2. `lanyard say '#all' TEXT` arrives in h2 with "room": true.
#   3. h2 stops; `say --timeout 1` fails (kept in the queue), `say --queue`
#      returns 0; h2 starts again on the same data dir, is rediscovered, and
#      both lines arrive, in order, once each.
#   4. `lanyard history host2 --json` on h1 lists every line, delivered; the
#      human `history host1` on h2 neutralises an escape sequence.
#
# Env: LANYARD_BIN (default: target/debug/lanyard under the repo root),
#      LANYARD_REQUIRE_NETNS=1 (fail instead of skip without root/netns),
#      LANYARD_KEEP_TMP=1 (keep the scratch dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=chat
need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

N=2
PORT=7717
WAIT_S=$PATIENCE # bound on anything that should happen at once (a guard, not a measurement)
CMD_S=$((PATIENCE + 30)) # kills a command that hangs; longer than any wait inside it

netns_setup "$N"
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN"

netns_on_failure() { dump_logs chat "$1"; }

declare -a ID SERVE_PID
LOGS=()
# serve_start, with its log kept for the failure report.
chat_serve() {
    serve_start "$1" "$2"
    LOGS+=("$2")
}

for ((i = 1; i <= N; i++)); do
    ID[i]=$(lny "$i" "$CMD_S" id --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
        die "h$i: 'lanyard id --json' failed"
    log "h$i: id ${ID[i]}"
done

chat_serve 1 h1
chat_serve 2 h2
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=peer_up id="${ID[2]}" >/dev/null || die "h1 never saw h2 up"
expect_event "$TMP/h2.jsonl" "$WAIT_S" event=peer_up id="${ID[1]}" >/dev/null || die "h2 never saw h1 up"
log "ok: the hosts found each other"

# 1. A direct line, through h1's running node.
TEXT1='hello from h1 '$'\e''[31mred'
lny 1 "$CMD_S" say --timeout "$WAIT_S" host2 "$TEXT1" 2>"$TMP/cmd-say1.err" || die "h1: 'lanyard say host2' failed: $(cat "$TMP/cmd-say1.err")"
got=$(expect_event "$TMP/h2.jsonl" "$WAIT_S" event=chat_received from="${ID[1]}" nick=host1 room=false text="$TEXT1") ||
    die "h2: no chat_received for the direct line"
msg_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$got")
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=chat_delivered id="$msg_id" to="${ID[2]}" >/dev/null ||
    die "h1: no chat_delivered for $msg_id"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=chat_queued id="$msg_id" to="${ID[2]}" >/dev/null ||
    die "h1: the running node did not report the line said through it"
log "ok: direct line delivered ($msg_id)"

# 2. The room.
lny 1 "$CMD_S" say --timeout "$WAIT_S" '#all' "to everyone" 2>"$TMP/cmd-say2.err" || die "h1: 'lanyard say #all' failed: $(cat "$TMP/cmd-say2.err")"
expect_event "$TMP/h2.jsonl" "$WAIT_S" event=chat_received from="${ID[1]}" room=true text="to everyone" >/dev/null ||
    die "h2: no chat_received for the room line"
log "ok: room line delivered"

# 3. Offline queue across a restart of the receiver.
netns_stop "${SERVE_PID[2]}" 5 || true
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=peer_down id="${ID[2]}" >/dev/null || die "h1 never saw h2 down"
if lny 1 "$CMD_S" say --timeout 1 host2 "first while away" 2>"$TMP/cmd-say3.err"; then
    die "h1: 'say' to an offline peer exited 0"
fi
grep -q "not delivered within 1 s; kept in the queue" "$TMP/cmd-say3.err" ||
    die "h1: unexpected error for an offline peer: $(cat "$TMP/cmd-say3.err")"
: >"$TMP/cmd-say3.err" # expected failure: not a diagnostic
lny 1 "$CMD_S" say --queue host2 "second while away" 2>"$TMP/cmd-say4.err" || die "h1: 'say --queue' failed: $(cat "$TMP/cmd-say4.err")"
if lny 1 "$CMD_S" say nobody-here "x" 2>"$TMP/cmd-say5.err"; then
    die "h1: 'say' to an unknown peer exited 0"
fi
grep -q 'no peer called "nobody-here"' "$TMP/cmd-say5.err" || die "h1: unclear unknown-peer error: $(cat "$TMP/cmd-say5.err")"
: >"$TMP/cmd-say5.err"
chat_serve 2 h2b
expect_event "$TMP/h2b.jsonl" "$WAIT_S" event=chat_received from="${ID[1]}" text="second while away" >/dev/null ||
    die "h2: the queued lines never arrived after its restart"
python3 - "$TMP/h2b.jsonl" <<'PY' || die "h2: queued lines out of order or repeated"
import json, sys
texts = [o["text"] for o in map(json.loads, filter(str.strip, open(sys.argv[1]))) if o.get("event") == "chat_received"]
if texts != ["first while away", "second while away"]:
    sys.exit("received %r" % texts)
PY
log "ok: queued lines delivered after h2's restart, in order, once each"

# 4. History on both sides.
lny 1 "$CMD_S" history host2 --json >"$TMP/hist1.jsonl" 2>"$TMP/cmd-hist1.err" || die "h1: 'history host2 --json' failed"
python3 - "$TMP/hist1.jsonl" "$TEXT1" <<'PY' || die "h1: history --json is wrong"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
texts = [(r["text"], r["state"]) for r in rows]
want = [(sys.argv[2], "delivered"), ("first while away", "delivered"), ("second while away", "delivered")]
if texts != want:
    sys.exit("history %r, want %r" % (texts, want))
PY
lny 2 "$CMD_S" history host1 >"$TMP/hist2.txt" 2>"$TMP/cmd-hist2.err" || die "h2: 'history host1' failed"
grep -qF 'host1: hello from h1 \u{1b}[31mred' "$TMP/hist2.txt" || die "h2: history lacks the neutralised line: $(cat "$TMP/hist2.txt")"
if grep -q $'\e' "$TMP/hist2.txt"; then die "h2: history printed a raw escape"; fi
[ "$(count_events "$TMP/h2.jsonl" event=chat_received)" = 2 ] || die "h2: expected exactly 2 lines before its restart"
log "ok: history on both hosts"

for ((i = 1; i <= N; i++)); do
    netns_stop "${SERVE_PID[i]}" 5 || true
done
netns_check_drops
netns_teardown

echo "chat: ok"
