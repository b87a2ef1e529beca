#!/usr/bin/env bash
# tests/netns/localsend.sh - lanyard against independent LocalSend v2 implementations.
#
# Network namespaces on a private bridge (see lib.sh); multicast stays inside them.
#   h1: `lanyard serve --json --accept-all` (mDNS on, so LocalSend's multicast too)
#   h2: `localsendd` (PyPI localsendd==0.1.1, a LocalSend v2.2 daemon; scripted
#       through `localsendctl`), HTTPS, unattended (it accepts by itself)
#   h3: `localsend-rs` (crates.io), if installed; SKIPs loudly otherwise
# Checks:
#   1. discovery both ways: localsendd lists lanyard (by its multicast), and
#      `lanyard peers --json` on h1 lists localsendd as a verified LocalSend device
#   2. localsendd sends lanyard a file (Unicode name): it arrives identical
#   3. lanyard sends localsendd a file: it arrives identical
#   4. PIN on localsendd: `lanyard send` without --pin fails saying so; with it, arrives
#   5. cancel from localsendd while lanyard sends: `lanyard send` fails, naming the file
#      (localsendd answers the upload 422 instead of telling the sender)
#   6. cancel on lanyard while localsendd sends: lanyard's row ends cancelled, nothing placed
#      and no partial left; meanwhile a second sender (curl from h3) gets 409
#   7. a folder and a text message from a hand-written client (tests/netns/ls_client.py; localsendd
#      sends neither): the folder arrives identical under its name, the text is a chat line from
#      that device
#   8. PIN on lanyard (h3, --localsend-pin): localsendd without it is refused (401), with it
#      the file arrives identical; a client (curl from h1) with 3 wrong PINs gets 401, 401,
#      429, and 429 again after
#  10. `lanyard peers --scan` finds localsendd with its multicast dropped (nft in h2): a new
#      node (--no-mdns, own data dir) in h3 lists it only with --scan, verified, and lists no
#      lanyard node as a LocalSend device
#   9. localsend-rs sends lanyard a file, and a text that becomes a chat line (h3)
#
# Env: LANYARD_BIN, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1, LOCALSEND_RS (path to
#      localsend-rs; default: on PATH).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=localsend
need_root
command -v python3 >/dev/null || die "python3 not found"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
# shellcheck source-path=SCRIPTDIR source=localsend_lib.sh
. "$HERE/localsend_lib.sh"
need_localsendd
need_tool openssl "localsendd makes its certificate with it"
need_tool curl "apt-get install curl: the second sender and the wrong PINs"
lanyard_bin

PORT=7717
WAIT_S=$PATIENCE
CMD_S=$((PATIENCE + 30))

netns_setup 3
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN"
LOGS=(h1)
netns_on_failure() {
    dump_logs localsend "$1"
    echo "== localsendd log" >&2
    tail -n 40 "$TMP/ls2.err" >&2 2>/dev/null || true
}

DL1=$TMP/dl1
LS2=$TMP/ls2
mkdir -p "$DL1" "$LS2"
serve_start 1 h1 --accept-all --download-dir "$DL1"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=listening >/dev/null

# localsendd in h2, its state and control socket in h2's home.
localsendd_start 2 "$LS2"

# 1. Discovery both ways.
ls_sees_lanyard() { ctl devices --json | python3 -c 'import json,sys; sys.exit(0 if any(d["alias"]=="host1" for d in json.load(sys.stdin)) else 1)'; }
until_ok "$WAIT_S" "localsendd lists host1" ls_sees_lanyard
lanyard_sees_ls() {
    lny 1 "$CMD_S" peers --json | python3 -c '
import json, sys
sys.exit(0 if any(p.get("localsend") and p["nick"] == "phone2" and p["verified"] for p in json.load(sys.stdin)) else 1)'
}
until_ok "$WAIT_S" "lanyard lists phone2, verified" lanyard_sees_ls
LS_FP=$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["self"]["fingerprint"])')
lny 1 "$CMD_S" peers --json | python3 -c '
import json, sys
fp = sys.argv[1]
d = [p for p in json.load(sys.stdin) if p.get("localsend")][0]
assert d["fingerprint"].upper() == fp.upper(), (d, fp)
' "$LS_FP" || die "lanyard's fingerprint for phone2 is not the one localsendd reports"
log "1. discovery both ways; phone2's fingerprint matches its certificate"

# 2. localsendd -> lanyard.
head -c 3000000 /dev/urandom >"$TMP/from phone ✓.bin"
ctl send --to host1 --wait --quiet "$TMP/from phone ✓.bin" >/dev/null || die "localsendctl send to host1 failed"
until_ok "$WAIT_S" "the file from phone2 in h1's download dir" test -f "$DL1/from phone ✓.bin"
cmp "$TMP/from phone ✓.bin" "$DL1/from phone ✓.bin" || die "the file from phone2 differs"
log "2. localsendd -> lanyard: 3 MB, Unicode name, identical"

# 3. lanyard -> localsendd.
head -c 2000000 /dev/urandom >"$TMP/to-phone.bin"
lny 1 "$CMD_S" send phone2 -- "$TMP/to-phone.bin" >"$TMP/send3.out" 2>"$TMP/cmd-send3.err" || die "lanyard send phone2 failed"
until_ok "$WAIT_S" "the file from lanyard in localsendd's folder" test -f "$LS2/to-phone.bin"
cmp "$TMP/to-phone.bin" "$LS2/to-phone.bin" || die "the file lanyard sent differs"
log "3. lanyard -> localsendd: 2 MB identical"

# 4. PIN.
ctl pin 4321 >/dev/null
if lny 1 "$CMD_S" send phone2 -- "$TMP/to-phone.bin" >"$TMP/send4.out" 2>&1; then
    die "a send without the PIN succeeded"
fi
grep -q "PIN" "$TMP/send4.out" || die "a send without the PIN does not say PIN: $(cat "$TMP/send4.out")"
lny 1 "$CMD_S" send --pin 4321 phone2 -- "$TMP/to-phone.bin" >"$TMP/send4b.out" 2>&1 || die "the send with the PIN failed: $(cat "$TMP/send4b.out")"
until_ok "$WAIT_S" "the PIN send in localsendd's folder" test -f "$LS2/to-phone (1).bin"
cmp "$TMP/to-phone.bin" "$LS2/to-phone (1).bin" || die "the PIN send differs"
ctl pin --clear >/dev/null
log "4. PIN: refused without, arrives with"

# 5. localsendd cancels while lanyard sends.
truncate -s 1G "$TMP/big.bin"
lny 1 "$CMD_S" send phone2 -- "$TMP/big.bin" >"$TMP/send5.out" 2>&1 &
SEND5=$!
ls_receiving() { ctl status --json | python3 -c 'import json,sys; a=json.load(sys.stdin).get("active") or {}; sys.exit(0 if a.get("direction")=="recv" and (a.get("bytesDone") or 0)>0 else 1)'; }
until_ok "$WAIT_S" "localsendd receiving the big file" ls_receiving
ctl cancel >/dev/null || die "localsendctl cancel failed"
if wait "$SEND5"; then die "lanyard's send survived localsendd's cancel"; fi
# localsendd does not tell the sender (no POST /cancel, unlike the 1.18 apps): it stops reading
# and answers the upload 422. lanyard reports the file as refused by the device.
grep -q "big.bin: the device refused it" "$TMP/send5.out" || die "lanyard's send does not say the device stopped it: $(tail -3 "$TMP/send5.out")"
log "5. cancelled by localsendd: lanyard's send fails, naming the file the device stopped"

# 6. lanyard cancels while localsendd sends.
ls_idle() { ctl status --json | python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin).get("active") else 1)'; }
until_ok "$WAIT_S" "localsendd idle" ls_idle
ctl send --to host1 "$TMP/big.bin" >/dev/null || die "localsendctl send (big) failed"
RX=$(expect_event "$TMP/h1.jsonl" "$WAIT_S" event=progress direction=receive name=big.bin | python3 -c 'import json,sys; print(json.load(sys.stdin)["transfer"])') ||
    die "no progress of the big file on h1"
# A second sender while that session runs: 409.
# prepare_upload NS HOST [QUERY]: a prepare-upload of one small file by curl (no client
# certificate: an unverified device), printing only the HTTP status.
prepare_upload() {
    local body
    body='{"info":{"alias":"curl","version":"2.1","deviceModel":null,"deviceType":"headless","fingerprint":"CURL0000","port":53317,"protocol":"https","download":false},"files":{"a":{"id":"a","fileName":"a.txt","size":1,"fileType":"text/plain"}}}'
    netns_exec "$1" timeout "$CMD_S" curl -sk --http1.1 -o /dev/null -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data "$body" "https://$2:53317/api/localsend/v2/prepare-upload${3:-}"
}
CODE=$(prepare_upload 3 "$(netns_addr 1)")
[ "$CODE" = 409 ] || die "a second sender during localsendd's session got $CODE, not 409"
lny 1 "$CMD_S" cancel "$RX" >/dev/null || die "lanyard cancel failed"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=cancelled transfer="$RX" >/dev/null || die "h1's receive did not end cancelled"
[ ! -e "$DL1/big.bin" ] || die "a cancelled file was placed"
no_partial() { [ -z "$(find "$DL1" -name '*.part' -print -quit)" ]; }
until_ok "$WAIT_S" "no partial file left in h1's download dir" no_partial
log "6. cancelled on lanyard: its row ends cancelled, nothing placed, no partial; a second sender meanwhile got 409"

# 7. A folder and a text from ls_client.py (in h3, to h1).
mkdir -p "$TMP/album/sub dir"
head -c 300000 /dev/urandom >"$TMP/album/sub dir/ü.bin"
printf 'x' >"$TMP/album/x.txt"
: >"$TMP/album/empty"
CODE=$(netns_exec 3 timeout "$CMD_S" python3 "$HERE/ls_client.py" folder "$(netns_addr 1)" "$TMP/album" 2>"$TMP/py7.err") ||
    die "the folder from ls_client.py failed ($CODE): $(tail -3 "$TMP/py7.err")"
for f in "sub dir/ü.bin" x.txt empty; do
    until_ok "$WAIT_S" "album/$f in h1's download dir" test -f "$DL1/album/$f"
    cmp "$TMP/album/$f" "$DL1/album/$f" || die "album/$f differs"
done
CODE=$(netns_exec 3 timeout "$CMD_S" python3 "$HERE/ls_client.py" text "$(netns_addr 1)" "hello from python ✓" 2>"$TMP/py7b.err") ||
    die "the text from ls_client.py was answered $CODE, not 204: $(tail -3 "$TMP/py7b.err")"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=chat_received nick=pyclient text="hello from python ✓" >/dev/null ||
    die "no chat line from pyclient"
[ -z "$(find "$DL1" -name '*.txt' ! -path '*/album/*' -print -quit)" ] || die "the text message was saved as a file"
log "7. from a hand-written client: a folder (3 files, a Unicode name, an empty file) identical, a text as a chat line"

# 8. PIN on lanyard's side (a second lanyard, h3, with a PIN).
DL3=$TMP/dl3
mkdir -p "$DL3"
serve_start 3 h3 --accept-all --download-dir "$DL3" --localsend-pin 2468
LOGS+=(h3)
expect_event "$TMP/h3.jsonl" "$WAIT_S" event=listening >/dev/null
ls_sees_host3() { ctl devices --json | python3 -c 'import json,sys; sys.exit(0 if any(d["alias"]=="host3" for d in json.load(sys.stdin)) else 1)'; }
until_ok "$WAIT_S" "localsendd lists host3" ls_sees_host3
until_ok "$WAIT_S" "localsendd idle" ls_idle
head -c 500000 /dev/urandom >"$TMP/pin.bin"
if ctl send --to host3 --wait --quiet "$TMP/pin.bin" >"$TMP/pin8.out" 2>&1; then
    die "localsendd's send without the PIN went through"
fi
grep -q PIN "$TMP/pin8.out" || die "localsendd does not say the PIN was wanted: $(cat "$TMP/pin8.out")"
[ ! -e "$DL3/pin.bin" ] || die "a file sent without the PIN was placed"
until_ok "$WAIT_S" "localsendd idle" ls_idle
ctl send --to host3 --pin 2468 --wait --quiet "$TMP/pin.bin" >"$TMP/pin8b.out" 2>&1 ||
    die "localsendd's send with the PIN failed: $(tail -3 "$TMP/pin8b.out")"
until_ok "$WAIT_S" "the PIN send in h3's download dir" test -f "$DL3/pin.bin"
cmp "$TMP/pin.bin" "$DL3/pin.bin" || die "the file sent with the PIN differs"
CODES=""
for pin in 1 2 3 4; do CODES="$CODES $(prepare_upload 1 "$(netns_addr 3)" "?pin=$pin")"; done
CODES="$CODES $(prepare_upload 1 "$(netns_addr 3)")"
[ "$CODES" = " 401 401 429 429 429" ] || die "wrong PINs got$CODES, not 401 401 429 429 429"
log "8. PIN on lanyard: localsendd refused without it, its file identical with it; wrong PINs 401 401 then 429"

# 10. peers --scan, localsendd's multicast dropped.
netns_exec 2 nft -f - <<'NFT'
table inet lsdrop {
    chain in { type filter hook input priority 0; udp dport 53317 drop; }
    chain out { type filter hook output priority 0; udp dport 53317 drop; }
}
NFT
fresh_peers() {
    local HENV
    host_env 3
    netns_exec 3 timeout "$CMD_S" "${HENV[@]}" "$LANYARD_BIN" --no-mdns --port 0 --data-dir "$TMP/h4" peers --json --wait 0 "$@"
}
has_phone2() {
    python3 -c '
import json, sys
devices = [p for p in json.load(sys.stdin) if p.get("localsend")]
assert not any(d["nick"].startswith("host") for d in devices), devices
sys.exit(0 if any(d["nick"] == "phone2" and d["verified"] for d in devices) else 1)'
}
fresh_peers >"$TMP/scan0.json" 2>"$TMP/scan0.err" || die "peers without --scan failed: $(cat "$TMP/scan0.err")"
if has_phone2 <"$TMP/scan0.json"; then die "a new node found phone2 without scanning"; fi
SCAN_T0=$(date +%s.%N)
fresh_peers --scan >"$TMP/scan1.json" 2>"$TMP/scan1.err" || die "peers --scan failed: $(cat "$TMP/scan1.err")"
SCAN_S=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$SCAN_T0" "$(date +%s.%N)")
has_phone2 <"$TMP/scan1.json" || die "peers --scan did not list phone2: $(cat "$TMP/scan1.json") $(cat "$TMP/scan1.err")"
log "10. peers --scan: phone2 found (verified) with its multicast dropped, in ${SCAN_S}s; $(cat "$TMP/scan1.err")"

# 9. localsend-rs, if installed.
LSRS=${LOCALSEND_RS:-$(command -v localsend-rs || true)}
if [ -z "$LSRS" ] || [ ! -x "$LSRS" ]; then
    [ "${LANYARD_REQUIRE_NETNS:-0}" = 1 ] && [ "${LANYARD_REQUIRE_LOCALSEND_RS:-0}" = 1 ] && die "localsend-rs not found"
    echo "SKIP localsend.sh part 9: localsend-rs not found (cargo install localsend-rs; set LOCALSEND_RS)"
else
    until_ok "$WAIT_S" "localsendd idle" ls_idle
    head -c 100000 /dev/urandom >"$TMP/rs.bin"
    netns_exec 3 timeout "$CMD_S" "$LSRS" send host1 "$TMP/rs.bin" >"$TMP/rs7.out" 2>&1 ||
        die "localsend-rs send failed: $(tail -5 "$TMP/rs7.out")"
    until_ok "$WAIT_S" "localsend-rs's file on h1" test -f "$DL1/rs.bin"
    cmp "$TMP/rs.bin" "$DL1/rs.bin" || die "localsend-rs's file differs"
    netns_exec 3 timeout "$CMD_S" "$LSRS" send "$(netns_addr 1)" "hello from rust" >"$TMP/rs7b.out" 2>&1 ||
        die "localsend-rs text failed: $(tail -5 "$TMP/rs7b.out")"
    expect_event "$TMP/h1.jsonl" "$WAIT_S" event=chat_received text="hello from rust" >/dev/null || die "no chat line from localsend-rs"
    log "9. localsend-rs -> lanyard: a file (found by its multicast, by alias) identical, a text (by address) as a chat line"
fi

netns_stop "$LS_PID" 5 || true
netns_stop "${SERVE_PID[3]}" 10 || true
netns_stop "${SERVE_PID[1]}" 10 || true
netns_check_drops
echo "PASS localsend.sh"
