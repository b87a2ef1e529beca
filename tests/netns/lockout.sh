#!/usr/bin/env bash
# tests/netns/lockout.sh - a lock-out attempt between three "lab machines" (network namespaces
# on a private bridge, see lib.sh; mDNS stays inside them).
#
#   h1: lanyard serve --json --accept-all                       (the victim)
#   h3: the attacker: throwaway keys, 100 transfer connections at once, each an offer header
#       and then nothing (`cargo test --test lockout remote_attack`, run in h3), until told to
#       stop; then it waits for h1 to end every connection it still holds
#   h2: lanyard serve; meanwhile 10 x `lanyard send host1 FILE` and 10 x `lanyard say host1`
#       -> every send and every line succeeds; the attacker was refused with a reason and its
#          held connections ended by h1's stall deadline (30 s); h1 still serves
#
# Prints "lockout: honest sends N/10, chat N/10; attack: ..." (the figures the README quotes).
# Env: LANYARD_BIN (default: target/debug/lanyard under the repo root), LOCKOUT_TEST_BIN (the
#      lockout test binary; default: the newest lockout-* in $CARGO_TARGET_DIR or target/, debug),
#      LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin
REPO=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
if [ -z "${LOCKOUT_TEST_BIN:-}" ]; then
    LOCKOUT_TEST_BIN=$(find "$TARGET_DIR/debug/deps" -maxdepth 1 -type f -executable -name 'lockout-*' -printf '%T@ %p\n' 2>/dev/null |
        sort -n | tail -n 1 | cut -d' ' -f2-)
fi
if [ -z "$LOCKOUT_TEST_BIN" ] || [ ! -x "$LOCKOUT_TEST_BIN" ]; then
    die "lockout test binary not found (run 'cargo test --test lockout --no-run' or set LOCKOUT_TEST_BIN)"
fi

PORT=7717
HONEST=10
CMD_S=$PATIENCE

netns_setup 3
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN; attacker: $LOCKOUT_TEST_BIN"

netns_on_failure() {
    echo "---- lockout: FAILED (exit $1); diagnostics ----" >&2
    for f in "$TMP"/h1.err "$TMP"/h2.err "$TMP"/attack.out "$TMP"/attack.err "$TMP"/cmd-*.err; do
        [ -e "$f" ] || continue
        echo "== $f" >&2
        tail -n 20 "$f" >&2
    done
}

serve_start 1 h1 --accept-all --download-dir "$TMP/in1"
serve_start 2 h2
wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h1.jsonl" || die "h1 did not start"
wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h2.jsonl" || die "h2 did not start"
H1=$(id_in 1)
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=peer_up id="$H1" >/dev/null || die "h2 never saw h1"

log "h3 attacks h1"
STOP=$TMP/stop-attack
netns_spawn 3 "$TMP/attack.out" "$TMP/attack.err" env LOCKOUT_TARGET="$(netns_addr 1):$PORT" LOCKOUT_STOP_FILE="$STOP" \
    "$LOCKOUT_TEST_BIN" --ignored --exact remote_attack --nocapture
ATTACK_PID=$NETNS_PID
# Let the attack take what it can before the honest peer starts.
wait_for "$PATIENCE" grep -q 'attacker: 100 opened' "$TMP/attack.out" || die "the attacker did not get going"
grep -q '"warning"' "$TMP/h1.jsonl" || die "h1 did not report refusing the attacker"

FILE=$TMP/report.bin
head -c 200000 /dev/urandom >"$FILE"
sent=0
said=0
for i in $(seq 1 $HONEST); do
    if lny 2 "$CMD_S" send host1 -- "$FILE" >/dev/null 2>"$TMP/cmd-send$i.err"; then
        sent=$((sent + 1))
    else
        log "send $i failed: $(cat "$TMP/cmd-send$i.err")"
    fi
    if lny 2 "$CMD_S" say --timeout "$CMD_S" host1 "line $i" 2>"$TMP/cmd-say$i.err"; then
        said=$((said + 1))
    else
        log "say $i failed: $(cat "$TMP/cmd-say$i.err")"
    fi
done

touch "$STOP"
# It ends on its own once h1 has ended every connection it still holds (stall limit 30 s).
wait_for $((PATIENCE * 2)) grep -q 'test result' "$TMP/attack.out" ||
    die "the attacker's connections did not all end: $(tail -n 5 "$TMP/attack.out")"
netns_stop "$ATTACK_PID" 5 || true
grep -q 'test result: ok' "$TMP/attack.out" || die "the attacker failed: $(tail -n 20 "$TMP/attack.out")"
tally=$(grep -o 'attack: .*' "$TMP/attack.out") || die "no tally from the attacker"
echo "lockout: honest sends $sent/$HONEST, chat $said/$HONEST; $tally (100 at once from one address, 30 s stall limit)"
[ "$sent" -eq $HONEST ] || die "honest sends failed"
[ "$said" -eq $HONEST ] || die "honest chat failed"
case $tally in *" refused=0 "*) die "the attacker was never refused" ;; esac
case $tally in *" other=0") ;; *) die "attacker connections ended without a reason" ;; esac
netns_check_drops
echo "lockout: ok"
