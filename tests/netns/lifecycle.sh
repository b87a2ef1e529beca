#!/usr/bin/env bash
# tests/netns/lifecycle.sh - how a transfer ends and comes back, with real processes on two
# "lab machines" (namespaces, see lib.sh), h1's uplink rate-limited (tc tbf) so that every
# transfer is mid-flight when we act; we wait on serve --json events, never for a while.
#
#   (a) `lanyard cancel ID` on the sender: h2 says cancelled_by_sender, never "authentication",
#       and keeps no partial data
#   (f) `lanyard cancel ID` on the receiver: both sides say cancelled_by_receiver, h1 in words
#       ("host2 cancelled big.bin") and in the one-shot send's output, nobody reports an
#       authentication failure, and neither side keeps partial data
#   (b) SIGTERM of the sending serve mid-send: h2 says stopped and keeps the partial; the serve
#       restarted on the same data dir resumes by itself and the file arrives verified
#   (c) kill -9 of the receiving serve mid-send, then a restart: the sender resumes by itself
#   (e) kill -9 of the sending serve mid-send, then a restart: it resumes by itself (the send was
#       stored as it started)
#   (d) Ctrl-C (SIGINT) of a one-shot `lanyard send`: exits non-zero with one line, h2 keeps the
#       partial, and the same send again resumes (resumed > 0)
#   (g) Ctrl-C of a one-shot `lanyard send host2 host3` (relayed: h2 passes it on to h3) while h2
#       has part of it: the command exits 1 promptly with one line, h2 hears that h1 stopped,
#       both keep their partial data, and the same send again resumes for both (verified); no
#       receive stays listed paused (the interrupted ones say where their bytes went)
#
# Env: LANYARD_BIN, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1, BIG_MIB (default 48),
#      SLOW_MBIT (default 40).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root
command -v python3 >/dev/null || die "python3 not found"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

BIG_MIB=${BIG_MIB:-48}
SLOW_MBIT=${SLOW_MBIT:-40}
PORT=7717

netns_setup 3
TMP=$NETNS_TMP
LOGS=(h1 h2 h3)
netns_on_failure() { dump_logs lifecycle "$1"; }

if ! netns_exec 1 tc qdisc replace dev eth0 root tbf rate "${SLOW_MBIT}mbit" burst 64kb latency 50ms; then
    [ "${LANYARD_REQUIRE_NETNS:-0}" = 1 ] && die "tc tbf on h1 failed (sch_tbf module?)"
    echo "SKIP lifecycle.sh: tc tbf failed (sch_tbf module?)"
    exit 0
fi

SRC=$TMP/src
mkdir -p "$SRC"
head -c $((BIG_MIB << 20)) /dev/urandom >"$SRC/big.bin"
SUM=$(sha256sum <"$SRC/big.bin")
IN2=$TMP/in2

# The json line of FILE with every KEY=VALUE, within PATIENCE; one field of it.
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
partials_on_h2() { ls -A "$IN2/.lanyard-partial" 2>/dev/null | wc -l; }
# A receive on h2 that has moved at least MIB MiB of transfer ID.
moved_on_h2() {
    python3 - "$TMP/h2.jsonl" "$1" "$2" <<'PY'
import json, sys
path, tid, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
for line in open(path, "rb"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("event") == "progress" and o.get("transfer") == tid and o.get("bytes", 0) >= mib << 20:
        sys.exit(0)
sys.exit(1)
PY
}
start_h1() { serve_start 1 h1 --download-dir "$TMP/in1"; }
start_h2() { serve_start 2 h2 --accept-all --download-dir "$IN2"; }
start_h1
start_h2
serve_start 3 h3 --accept-all --download-dir "$TMP/in3"
expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick=host2 >/dev/null
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=peer_up nick=host1 >/dev/null
expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick=host3 >/dev/null

# send_bg: `lanyard send host2 -- big.bin` on h1 (handed to h1's serve), in the background;
# once h2 has 4 MiB of it prints "ID WIRE": h1's id for it and the one h2 knows it by (a send
# to a list of peers goes by its group's id on the wire).
send_bg() {
    local before
    before=$(count_events "$TMP/h1.jsonl" event=transfer_started)
    (lny 1 $((PATIENCE * 5)) send host2 -- "$SRC/big.bin" >"$TMP/cmd-send-$1.out" 2>"$TMP/cmd-send-$1.err" || true) &
    wait_for "$PATIENCE" test "$(count_events "$TMP/h1.jsonl" event=transfer_started)" -gt "$before" || die "$1: no send started"
    local ids
    ids=$(python3 -c '
import json,sys
t=[json.loads(l) for l in open(sys.argv[1],"rb") if b"transfer_started" in l][-1]
print(t["transfer"], t["group"] or t["transfer"])' "$TMP/h1.jsonl")
    wait_for "$PATIENCE" moved_on_h2 "${ids#* }" 4 || die "$1: $ids never got going"
    echo "$ids"
}

log "(a) lanyard cancel on the sender"
read -r ID WIRE < <(send_bg a)
lny 1 "$PATIENCE" cancel "$ID" >/dev/null
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=cancelled transfer="$WIRE") || die "(a) h2 saw no cancel"
[ "$(field code <<<"$E")" = cancelled_by_sender ] || die "(a) code: $E"
log "(a) h2: $(field reason <<<"$E")"
! grep -q authentication "$TMP/h2.jsonl" "$TMP/h2.err" || die "(a) h2 reports an authentication failure"
wait_for "$PATIENCE" test "$(partials_on_h2)" = 0 || die "(a) h2 kept partial data after a cancel"

log "(f) lanyard cancel on the receiver"
read -r ID WIRE < <(send_bg f)
lny 2 "$PATIENCE" cancel "$WIRE" >/dev/null
E=$(expect_event "$TMP/h1.jsonl" "$PATIENCE" event=cancelled transfer="$ID") || die "(f) h1 saw no cancel"
[ "$(field code <<<"$E")" = cancelled_by_receiver ] || die "(f) h1's code: $E"
[[ "$(field reason <<<"$E")" == "host2 cancelled big.bin" ]] || die "(f) h1's words: $E"
log "(f) h1: $(field reason <<<"$E")"
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=cancelled transfer="$WIRE") || die "(f) h2 saw no cancel"
[ "$(field code <<<"$E")" = cancelled_by_receiver ] || die "(f) h2's code: $E"
log "(f) h2: $(field reason <<<"$E")"
wait_for "$PATIENCE" grep -q "cancelled" "$TMP/cmd-send-f.err" "$TMP/cmd-send-f.out" || die "(f) the send did not say it was cancelled"
log "(f) send: $(cat "$TMP/cmd-send-f.err" "$TMP/cmd-send-f.out")"
! grep -q authentication "$TMP/h1.jsonl" "$TMP/h1.err" "$TMP/h2.jsonl" "$TMP/h2.err" || die "(f) an authentication failure was reported"
wait_for "$PATIENCE" test "$(partials_on_h2)" = 0 || die "(f) h2 kept partial data after its cancel"
[ "$(ls -A "$TMP/in1/.lanyard-partial" 2>/dev/null | wc -l)" = 0 ] || die "(f) h1 holds partial data"

log "(b) SIGTERM of the sending serve, then a restart on the same data dir"
read -r ID WIRE < <(send_bg b)
netns_stop "${SERVE_PID[1]}" 10 || true
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=error transfer="$WIRE") || die "(b) h2 saw no stop"
[ "$(field code <<<"$E")" = stopped ] || die "(b) code: $E"
log "(b) h2: $(field message <<<"$E")"
[ "$(partials_on_h2)" = 1 ] || die "(b) h2 did not keep the partial"
mv "$TMP/h1.jsonl" "$TMP/h1-b.jsonl"
start_h1
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=done transfer="$WIRE" failed=0 >/dev/null || die "(b) not resumed"
[ "$(sha256sum <"$IN2/big.bin")" = "$SUM" ] || die "(b) the resumed file differs"
rm "$IN2/big.bin"

log "(c) kill -9 of the receiving serve, then a restart"
read -r ID WIRE < <(send_bg c)
kill -KILL "${SERVE_PID[2]}"
wait "${SERVE_PID[2]}" 2>/dev/null || true
E=$(expect_event "$TMP/h1.jsonl" "$PATIENCE" event=error transfer="$ID") || die "(c) h1 saw no end"
log "(c) h1: $(field message <<<"$E")"
mv "$TMP/h2.jsonl" "$TMP/h2-c.jsonl"
start_h2
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=done transfer="$WIRE" failed=0 >/dev/null || die "(c) not resumed"
[ "$(sha256sum <"$IN2/big.bin")" = "$SUM" ] || die "(c) the resumed file differs"
rm "$IN2/big.bin"

log "(e) kill -9 of the sending serve, then a restart on the same data dir"
read -r ID WIRE < <(send_bg e)
kill -KILL "${SERVE_PID[1]}"
wait "${SERVE_PID[1]}" 2>/dev/null || true
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=error transfer="$WIRE") || die "(e) h2 saw no end"
log "(e) h2: $(field message <<<"$E")"
[ "$(partials_on_h2)" = 1 ] || die "(e) h2 did not keep the partial"
mv "$TMP/h1.jsonl" "$TMP/h1-e.jsonl"
start_h1
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=done transfer="$WIRE" failed=0 >/dev/null || die "(e) not resumed: the send was not stored as it started"
[ "$(sha256sum <"$IN2/big.bin")" = "$SUM" ] || die "(e) the resumed file differs"
rm "$IN2/big.bin"

log "(d) Ctrl-C of a one-shot send"
netns_stop "${SERVE_PID[1]}" 10 || true
mv "$TMP/h1.jsonl" "$TMP/h1-c.jsonl"
BEFORE=$(count_events "$TMP/h2.jsonl" event=transfer_started)
host_env 1
netns_spawn 1 "$TMP/cmd-d.out" "$TMP/cmd-d.err" "${HENV[@]}" "$LANYARD_BIN" send host2 -- "$SRC/big.bin"
SEND_PID=$NETNS_PID
wait_for "$PATIENCE" test "$(count_events "$TMP/h2.jsonl" event=transfer_started)" -gt "$BEFORE" || die "(d) the send never started"
ID=$(python3 -c '
import json,sys
ids=[json.loads(l)["transfer"] for l in open(sys.argv[1],"rb") if b"transfer_started" in l]
print(ids[-1])' "$TMP/h2.jsonl")
wait_for "$PATIENCE" moved_on_h2 "$ID" 4 || die "(d) never got going"
kill -INT "$SEND_PID"
RC=0
wait "$SEND_PID" || RC=$?
[ "$RC" != 0 ] || die "(d) an interrupted send exited 0"
[ "$(grep -c . "$TMP/cmd-d.err")" -le 2 ] || die "(d) more than one line: $(cat "$TMP/cmd-d.err")"
log "(d) exit $RC: $(tail -n 1 "$TMP/cmd-d.err")"
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=error transfer="$ID") || die "(d) h2 saw no stop"
[ "$(field code <<<"$E")" = stopped ] || die "(d) code: $E"
[ "$(partials_on_h2)" = 1 ] || die "(d) h2 did not keep the partial"
lny 1 $((PATIENCE * 5)) send host2 -- "$SRC/big.bin" >"$TMP/cmd-d2.out" 2>"$TMP/cmd-d2.err" || die "(d) the second send failed"
grep -q resumed "$TMP/cmd-d2.out" || die "(d) nothing resumed: $(cat "$TMP/cmd-d2.out")"
log "(d) again: $(cat "$TMP/cmd-d2.out")"
[ "$(sha256sum <"$IN2/big.bin")" = "$SUM" ] || die "(d) the file differs"
rm "$IN2/big.bin"

log "(g) Ctrl-C of a one-shot send to two peers, relayed"
BEFORE=$(count_events "$TMP/h2.jsonl" event=transfer_started)
host_env 1
netns_spawn 1 "$TMP/cmd-g.out" "$TMP/cmd-g.err" "${HENV[@]}" "$LANYARD_BIN" send host2 host3 -- "$SRC/big.bin"
SEND_PID=$NETNS_PID
wait_for "$PATIENCE" test "$(count_events "$TMP/h2.jsonl" event=transfer_started)" -gt "$BEFORE" || die "(g) the send never started"
ID=$(python3 -c '
import json,sys
ids=[o["transfer"] for o in (json.loads(l) for l in open(sys.argv[1],"rb") if b"transfer_started" in l) if o["direction"] == "receive"]
print(ids[-1])' "$TMP/h2.jsonl")
wait_for "$PATIENCE" moved_on_h2 "$ID" 4 || die "(g) never got going"
kill -INT "$SEND_PID"
# It ends on its own, without waiting out the recipients (a stop is said, not negotiated).
wait_for "$PATIENCE" eval '! kill -0 "$SEND_PID" 2>/dev/null' || die "(g) the interrupted send did not exit"
RC=0
wait "$SEND_PID" || RC=$?
[ "$RC" = 1 ] || die "(g) an interrupted send exited $RC: $(cat "$TMP/cmd-g.err")"
[ "$(grep -c . "$TMP/cmd-g.err")" -le 2 ] || die "(g) more than one line: $(cat "$TMP/cmd-g.err")"
log "(g) exit $RC: $(tail -n 1 "$TMP/cmd-g.err")"
E=$(expect_event "$TMP/h2.jsonl" "$PATIENCE" event=error transfer="$ID") || die "(g) h2 saw no stop"
[ "$(field code <<<"$E")" = stopped ] || die "(g) h2's code: $E"
E=$(expect_event "$TMP/h3.jsonl" "$PATIENCE" event=error transfer="$ID") || die "(g) h3 saw no end"
log "(g) h3: $(field message <<<"$E")"
[ "$(partials_on_h2)" = 1 ] || die "(g) h2 did not keep the partial"
[ "$(ls -A "$TMP/in3/.lanyard-partial" 2>/dev/null | wc -l)" = 1 ] || die "(g) h3 did not keep the partial"
! grep -q authentication "$TMP/h2.jsonl" "$TMP/h3.jsonl" || die "(g) an authentication failure was reported"
lny 1 $((PATIENCE * 5)) send host2 host3 -- "$SRC/big.bin" >"$TMP/cmd-g2.out" 2>"$TMP/cmd-g2.err" || die "(g) the second send failed: $(cat "$TMP/cmd-g2.out" "$TMP/cmd-g2.err")"
log "(g) again: $(tr '\n' ' ' <"$TMP/cmd-g2.out")"
# Each receiver's newest receive started from the partial it kept (the sender's lines do not
# say it for a relayed send).
for h in 2 3; do
    lny "$h" "$PATIENCE" transfers --json >"$TMP/transfers-g-$h.jsonl"
    R=$(python3 -c '
import json,sys
r=[t for t in map(json.loads, open(sys.argv[1])) if t["direction"] == "receive"]
print(r[-1]["resumed"] if r else 0)' "$TMP/transfers-g-$h.jsonl")
    [ "$R" -gt 0 ] || die "(g) h$h resumed nothing"
    log "(g) h$h resumed $R bytes"
    # The interrupted receive whose bytes went on does not stay listed as paused.
    P=$(python3 -c '
import json,sys
print(" ".join(t["transfer"] for t in map(json.loads, open(sys.argv[1])) if t["direction"] == "receive" and t["state"] == "paused"))' "$TMP/transfers-g-$h.jsonl")
    [ -z "$P" ] || die "(g) h$h still lists paused receives: $P"
done
[ "$(sha256sum <"$IN2/big.bin")" = "$SUM" ] || die "(g) h2's file differs"
[ "$(sha256sum <"$TMP/in3/big.bin")" = "$SUM" ] || die "(g) h3's file differs"

netns_check_drops
echo "PASS lifecycle.sh"
