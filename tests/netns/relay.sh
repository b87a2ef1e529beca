#!/usr/bin/env bash
# tests/netns/relay.sh - a send to five lab machines relayed as a chain, with its faults.
#
# Six "lab machines" (network namespaces on a private bridge, see lib.sh), mDNS on (safe: the
# multicast never leaves our namespaces, and it lets the relays find each other); the sender
# names its recipients by address, in chain order:
#
#   h2..h6: lanyard serve --json --accept-all
#   h1:     lanyard send 10.99.0.12:7717 ... 10.99.0.16:7717 -- PATH...   (h1 -> h2 -> ... -> h6)
#
#   (a) a folder + a BIG_MIB file: exit 0, every recipient has the sender's sha256 of every file
#       and a "verified" line; each of h2..h5 forwarded (a `send` transfer or progress line in its
#       events); each recipient's receive row in `transfers --json` is done, from h1 via the host
#       before it in the chain (none for h2), named "cours réseau/ and 1 more (6 files)"
#   (b) every uplink limited by tc (tbf, SLOW_MBIT); once h4 (behind h3) has received 30% of a
#       BIG_MIB file, h3 is killed with SIGKILL: the send exits non-zero naming h3 and why, h2
#       and h4..h6 end verified with the sender's sha256, h4 was attached again and its progress
#       counts what it had as resumed, and no survivor's received bytes ever went back by more
#       than SLACK_MIB (resumed, not restarted)
#   (c) h3 restarted with LANYARD_TEST_CORRUPT_FORWARD=CORRUPT_CHUNK (it flips a byte in that
#       1 MiB chunk of what it forwards), links still limited: h4 names that chunk in its error
#       line (serve --json) or log, h5 and h6 report no bad chunk (h4 forwarded only verified
#       data), h4 resumed at least the CORRUPT_CHUNK MiB before the bad chunk and its bytes never
#       went back by more than SLACK_MIB, exit 0, every recipient has the sender's sha256
#
# Every wait is on events (progress lines of the receivers' `serve --json`), bounded by PATIENCE.
#
# Env: LANYARD_BIN (default target/debug/lanyard), BIG_MIB (default 64), SLOW_MBIT (default 50),
#      CORRUPT_CHUNK (default 20, < BIG_MIB), RELAY=0 (send with NO_RELAY_FLAG, default
#      --no-relay: (a) and (b) for parallel uploads, minus what only a relay does; no (c)),
#      PATIENCE, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1 (see lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=relay
need_root
for c in python3 sha256sum tc; do
    command -v "$c" >/dev/null || die "$c not found (Debian: python3, coreutils, iproute2)"
done

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

BIG_MIB=${BIG_MIB:-64}
SLOW_MBIT=${SLOW_MBIT:-50}
CORRUPT_CHUNK=${CORRUPT_CHUNK:-20}
RELAY=${RELAY:-1}
NO_RELAY_FLAG=${NO_RELAY_FLAG---no-relay}
# A receiver may count a chunk it then drops (unverified, or not yet on disk when its sender
# died): its bytes may step back by that much on a resume, never by what a restart loses.
SLACK_MIB=4
PORT=7717
RELAYPY="$HERE/relay.py"
RECIPIENTS=(2 3 4 5 6)
((CORRUPT_CHUNK < BIG_MIB)) || die "CORRUPT_CHUNK ($CORRUPT_CHUNK) must be < BIG_MIB ($BIG_MIB)"

SEND_FLAGS=()
[ "$RELAY" = 1 ] || { [ -z "$NO_RELAY_FLAG" ] || SEND_FLAGS=("$NO_RELAY_FLAG"); }

netns_setup 6
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN; $BIG_MIB MiB; relay=$RELAY ${SEND_FLAGS[*]}"

netns_on_failure() {
    local f
    echo "---- relay: FAILED (exit $1); diagnostics ----" >&2
    for f in "$TMP"/h*.jsonl "$TMP"/h*.err "$TMP"/send-*; do
        [ -s "$f" ] || continue
        echo "== $(basename "$f") (no progress lines)" >&2
        grep -v '"progress"' "$f" | tail -n 25 >&2 || true
    done
    echo "---- end of diagnostics ----" >&2
}

SRC=$TMP/src
TREE="$SRC/cours réseau"
mkdir -p "$TREE/td 1/données" "$TREE/vide"
echo "bonjour" >"$TREE/td 1/données/été.txt"
: >"$TREE/td 1/empty.bin"
for n in 1 2 3; do head -c $((n * 300000)) /dev/urandom >"$TREE/td 1/f$n.dat"; done
for p in a b c; do head -c $((BIG_MIB << 20)) /dev/urandom >"$SRC/big-$p.bin"; done

declare -a SPEC=()
for i in "${RECIPIENTS[@]}"; do
    SPEC[i]="$(netns_addr "$i"):$PORT"
    serve_start "$i" "h$i" --accept-all --download-dir "$TMP/in$i"
done
for i in "${RECIPIENTS[@]}"; do
    wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h$i.jsonl" || die "h$i did not start"
done
ID3=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["id"])' "$TMP/h3.jsonl")

# Hashes of every file under a dir, as "hash  relative/path" lines.
hashes() (cd "$1" && find . -type f ! -path './.lanyard-partial/*' -print0 | sort -z | xargs -0 -r sha256sum)

# send_start NAME PATH...: h1 sends PATH... to h2..h6 in chain order, in the background
# (stdout and stderr in $TMP/send-NAME.{out,err}); its pid in SEND_PID.
send_start() {
    local name=$1 i
    shift
    local -a specs=()
    for i in "${RECIPIENTS[@]}"; do specs+=("${SPEC[i]}"); done
    lny 1 $((PATIENCE * 5)) send "${SEND_FLAGS[@]}" "${specs[@]}" -- "$@" \
        >"$TMP/send-$name.out" 2>"$TMP/send-$name.err" &
    SEND_PID=$!
}

# send_wait NAME: wait for the send; its exit status in SEND_RC; its output logged.
send_wait() {
    SEND_RC=0
    wait "$SEND_PID" || SEND_RC=$?
    log "send $1 exited $SEND_RC; its last lines:"
    tail -n 8 "$TMP/send-$1.out" "$TMP/send-$1.err" >&2
}

# peer_line NAME I: the send's last line about recipient I (it starts with the address given).
peer_line() {
    cat "$TMP/send-$1.out" "$TMP/send-$1.err" | awk -v p="${SPEC[$2]}:" 'index($0, p) == 1' | tail -n 1
}

# verified NAME I FILE...: after send NAME, recipient I has each FILE (relative to $SRC) with the sender's
# sha256, and the send said so.
verified() {
    local name=$1 i=$2 f line
    shift 2
    for f in "$@"; do
        if [ -d "$SRC/$f" ]; then
            diff <(hashes "$SRC/$f") <(hashes "$TMP/in$i/$f") >&2 || die "($name) h$i: $f differs"
        else
            [ "$(sha256sum <"$SRC/$f")" = "$(sha256sum <"$TMP/in$i/$f" 2>/dev/null)" ] || die "($name) h$i: $f missing or differs"
        fi
    done
    line=$(peer_line "$name" "$i")
    [[ $line == *verified* && $line != *fail* ]] || die "($name) no 'verified' line for h$i (${SPEC[i]}): '$line'"
}

# no_step_back NAME I SINCE_MS [CUT_MS]: recipient I's received bytes never went back by more
# than SLACK_MIB since SINCE_MS (it resumed rather than restarted); sets RESTARTS (its receive
# transfer_started / error lines after CUT_MS) and RESUMED (the most bytes its progress after
# CUT_MS counted as resumed).
no_step_back() {
    local name=$1 i=$2 r
    r=$(python3 "$RELAYPY" drops "$TMP/h$i.jsonl" "$3" "${4:-$3}") || die "($name) cannot read h$i's events"
    read -r peak drop from to lines RESTARTS RESUMED < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["peak"], r["drop"], r["drop_from"], r["drop_to"], r["lines"], len(r["restarts"]), r["resumed"])' "$r")
    log "($name) h$i: received up to $peak bytes in $lines progress lines; largest step back $drop ($from -> $to); $RESTARTS restart line(s); $RESUMED bytes resumed"
    ((lines > 0)) || die "($name) h$i wrote no receive progress"
    ((drop <= SLACK_MIB << 20)) || die "($name) h$i started again from $to bytes after having $from: restarted, not resumed"
}

# ---- (a) a plain relayed send ----
log "(a) folder + ${BIG_MIB} MiB, h1 -> h2 -> ... -> h6"
since=$(netns_now_ms)
send_start a "$TREE" "$SRC/big-a.bin"
send_wait a
((SEND_RC == 0)) || die "(a) send exited $SEND_RC"
log "(a) took $(($(netns_now_ms) - since)) ms"
for i in "${RECIPIENTS[@]}"; do
    verified a "$i" "cours réseau" big-a.bin
    [ -d "$TMP/in$i/cours réseau/vide" ] || die "(a) h$i: the empty folder is missing"
done
if [ "$RELAY" = 1 ]; then
    for i in 2 3 4 5; do
        [[ $(python3 "$RELAYPY" grep "$TMP/h$i.jsonl" "$since" transfer_started progress) == *'"direction": "send"'* ]] ||
            die "(a) h$i forwarded nothing (no send transfer in its events): not relayed"
    done
    # Each recipient's row (`transfers --json`, asked of its running serve) tells the truth: done,
    # from h1 through the relay that passed the offer on (none for h2), named as a person would.
    ID1=$(id_in 1)
    for i in "${RECIPIENTS[@]}"; do
        via=$( ((i == 2)) || echo "host$((i - 1))")
        lny "$i" "$PATIENCE" transfers --json >"$TMP/rows$i.jsonl" || die "(a) h$i: transfers --json failed"
        row=$(python3 "$RELAYPY" row "$TMP/rows$i.jsonl" "$ID1" "$via" "cours réseau/ and 1 more (6 files)") ||
            die "(a) h$i: its receive row does not tell the truth (see $TMP/rows$i.jsonl)"
        log "(a) h$i: $row"
    done
fi

# ---- (b) the middle relay dies ----
# Uplinks (each host's eth0 egress) limited so that the send takes seconds, and a kill at 30%
# lands mid-way whatever the machine's speed. burst >= 64 KiB: a GSO packet bigger than the
# bucket would be split or dropped by tbf.
for ((i = 1; i <= 6; i++)); do
    if ! netns_exec "$i" tc qdisc replace dev eth0 root tbf rate "${SLOW_MBIT}mbit" burst 64kb latency 50ms; then
        [ "${LANYARD_REQUIRE_NETNS:-0}" = 1 ] && die "tc tbf on h$i failed (sch_tbf module?)"
        echo "SKIP relay.sh (b) and (c): tc tbf failed (sch_tbf module?); (a) passed"
        exit 0
    fi
done
log "(b) uplinks limited to $SLOW_MBIT Mbit/s (tbf, burst 64kb, latency 50ms); ${BIG_MIB} MiB; h3 dies at 30%"
since=$(netns_now_ms)
send_start b "$SRC/big-b.bin"
read -r at bytes from < <(python3 "$RELAYPY" reached "$TMP/h4.jsonl" "$since" $(((BIG_MIB << 20) * 3 / 10)) "$PATIENCE") ||
    die "(b) h4 never reached 30% of the file"
# Relayed, h4's data comes from h3 at that point (h1's offer via host3): h3 dies while it relays.
[ "$RELAY" != 1 ] || [ "$from" = host3 ] || die "(b) h4 was receiving via $from, not via h3 (host3)"
kill -KILL "${SERVE_PID[3]}"
kill_ms=$(netns_now_ms)
log "(b) h4 had $bytes bytes $((kill_ms - at)) ms ago: killed h3 (pid ${SERVE_PID[3]})"
wait "${SERVE_PID[3]}" 2>/dev/null || true
send_wait b
((SEND_RC != 0)) || die "(b) send exited 0 although h3 died"
line=$(peer_line b 3)
[[ $line =~ (fail|not\ delivered) ]] || die "(b) the send's output has no line saying h3 (${SPEC[3]}) failed and why: '$line'"
log "(b) h3: $line"
for i in 2 4 5 6; do verified b "$i" big-b.bin; done
for i in 4 5 6; do
    no_step_back b "$i" "$since" "$kill_ms"
    if [ "$RELAY" = 1 ] && ((i == 4)); then
        ((RESTARTS > 0)) || die "(b) h4 was not attached again after h3 died (no receive transfer_started / error line)"
        ((RESUMED + (SLACK_MIB << 20) >= bytes)) ||
            die "(b) h4 had $bytes bytes when h3 died but resumed only $RESUMED: it moved again what it had"
    fi
done

# ---- (c) a relay corrupts a chunk ----
if [ "$RELAY" != 1 ]; then
    netns_check_drops
    echo "relay: ok ((a) and (b) as parallel uploads; (c) needs a relay)"
    exit 0
fi
log "(c) h3 again, corrupting forwarded chunk $CORRUPT_CHUNK; ${BIG_MIB} MiB, links still limited"
ups_before=$(count_events "$TMP/h2.jsonl" event=peer_up id="$ID3")
LANYARD_TEST_CORRUPT_FORWARD=$CORRUPT_CHUNK serve_start 3 h3c --accept-all --download-dir "$TMP/in3"
wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h3c.jsonl" || die "h3 did not start again"
# h2 forwards to h3: wait until it has h3 back.
h3_back() { (($(count_events "$TMP/h2.jsonl" event=peer_up id="$ID3") > ups_before)); }
wait_for "$PATIENCE" h3_back || die "(c) h2 never saw h3 again"
since=$(netns_now_ms)
send_start c "$SRC/big-c.bin"
send_wait c
((SEND_RC == 0)) || die "(c) send exited $SEND_RC although every recipient can end verified"
for i in "${RECIPIENTS[@]}"; do verified c "$i" big-c.bin; done
# "chunk 20", "chunk #20", "chunk: 20", but not "chunk 200".
bad_chunk="chunk[^0-9]{0,12}$CORRUPT_CHUNK([^0-9]|\$)"
# (No grep -q / head on a pipe here: under pipefail, the writer's SIGPIPE would decide.)
# grep reads everything (no -m): stopping early would SIGPIPE the writer, which pipefail counts.
named=$({
    python3 "$RELAYPY" grep "$TMP/h4.jsonl" "$since" error warning
    cat "$TMP/h4.err"
} | grep -iE "$bad_chunk") || die "(c) h4 did not name chunk $CORRUPT_CHUNK in an error line or its log"
named=${named%%$'\n'*}
log "(c) h4: $named"
for i in 5 6; do
    bad=$(grep -ihE 'chunk[^a-z]{0,12}[0-9]' "$TMP/h$i.err" <(python3 "$RELAYPY" grep "$TMP/h$i.jsonl" "$since" error warning) |
        grep -iE 'corrupt|verif|mismatch|hash') || true
    [ -z "$bad" ] || die "(c) h$i saw a bad chunk too (h4 forwarded data it had not verified): $bad"
done
no_step_back c 4 "$since"
((RESUMED >= CORRUPT_CHUNK << 20)) ||
    die "(c) h4 resumed $RESUMED bytes: not the $CORRUPT_CHUNK MiB verified before the bad chunk"

netns_check_drops
echo "relay: ok"
