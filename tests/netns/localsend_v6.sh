#!/usr/bin/env bash
# tests/netns/localsend_v6.sh - LocalSend 1.18's IPv6 group (ff12::fd3a:e420), with IPv4's
# LocalSend multicast dropped (nft) so only IPv6 can carry announcements.
#
# Two namespaces with IPv6 link-local addresses (NETNS_IPV6=1):
#   h1: `lanyard serve --json --accept-all` (mDNS on, so LocalSend's multicast too)
#   h2: `localsendd` (dual-stack HTTPS; it speaks no IPv6 multicast itself) and
#       tests/netns/ls_client.py speaking the IPv6 group for it
# Checks:
#   1. lanyard announces on the IPv6 group out of eth0 (heard in h2, from a link-local address)
#   2. an announcement of localsendd's on the IPv6 group is answered by a register over IPv6:
#      lanyard lists phone2, verified, at its link-local address; localsendd lists host1
#   3. lanyard sends phone2 a file over IPv6: it arrives identical
#
# Env: LANYARD_BIN, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

NETNS_LOG_TAG=localsend_v6
need_root
command -v python3 >/dev/null || die "python3 not found"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
# shellcheck source-path=SCRIPTDIR source=localsend_lib.sh
. "$HERE/localsend_lib.sh"
need_localsendd
need_tool nft "apt-get install nftables"
lanyard_bin

WAIT_S=$PATIENCE
CMD_S=$((PATIENCE + 30))
export NETNS_IPV6=1

netns_setup 2
TMP=$NETNS_TMP
LOGS=(h1)
netns_on_failure() {
    dump_logs localsend_v6 "$1"
    tail -n 40 "$TMP/ls2.err" >&2 2>/dev/null || true
}
link_local() { netns_exec "$1" ip -6 -o addr show dev eth0 scope link | awk '{print $4}' | cut -d/ -f1; }
has_link_local() { [ -n "$(link_local "$1")" ] && ! netns_exec "$1" ip -6 -o addr show dev eth0 | grep -q tentative; }
until_ok "$WAIT_S" "h1's link-local address" has_link_local 1
until_ok "$WAIT_S" "h2's link-local address" has_link_local 2

# IPv4's LocalSend multicast dropped both ways in both: only the IPv6 group is left.
for i in 1 2; do
    netns_exec "$i" nft -f - <<'NFT'
table ip lsdrop4 {
    chain in { type filter hook input priority 0; udp dport 53317 drop; }
    chain out { type filter hook output priority 0; udp dport 53317 drop; }
}
NFT
done

DL1=$TMP/dl1
LS2=$TMP/ls2
mkdir -p "$DL1" "$LS2"
# The listener first: lanyard's announcement burst is at its start.
netns_spawn 2 "$TMP/listen6.out" "$TMP/listen6.err" python3 "$HERE/ls_client.py" listen6 eth0 host1 "$WAIT_S"
LISTEN_PID=$NETNS_PID
until_ok "$WAIT_S" "the listener joined" sh -c "ip netns exec $(netns_name 2) ss -uln | grep -q ':53317'"
serve_start 1 h1 --accept-all --download-dir "$DL1"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=listening >/dev/null

# 1. lanyard's announcement on the IPv6 group.
wait "$LISTEN_PID" || die "no announcement of host1 on the IPv6 group: $(cat "$TMP/listen6.err")"
python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert a["from"].startswith("fe80:"), a
assert a["announcement"]["announce"] is True and a["announcement"]["protocol"] == "https", a' "$TMP/listen6.out" ||
    die "host1's IPv6 announcement is not as expected: $(cat "$TMP/listen6.out")"
log "1. lanyard announces on ff12::fd3a:e420 from $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["from"])' "$TMP/listen6.out")"

# 2. localsendd announced (by ls_client.py) on the IPv6 group: lanyard registers over IPv6.
localsendd_start 2 "$LS2"
LS_FP=$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["self"]["fingerprint"])')
ANN=$(python3 -c '
import json, sys
print(json.dumps({"alias": "phone2", "version": "2.2", "deviceModel": "localsendd", "deviceType": "headless",
                  "fingerprint": sys.argv[1], "port": 53317, "protocol": "https", "download": False, "announce": True}))' "$LS_FP")
lanyard_sees_phone2() {
    netns_exec 2 python3 "$HERE/ls_client.py" announce6 eth0 "$ANN"
    lny 1 "$CMD_S" peers --json --wait 0 | python3 -c '
import json, sys
sys.exit(0 if any(p.get("localsend") and p["nick"] == "phone2" and p["verified"] and p["addr"].startswith("[fe80:")
                  for p in json.load(sys.stdin)) else 1)'
}
until_ok "$WAIT_S" "lanyard lists phone2, verified, at a link-local address" lanyard_sees_phone2
ls_sees_lanyard() { ctl devices --json | python3 -c 'import json,sys; sys.exit(0 if any(d["alias"]=="host1" for d in json.load(sys.stdin)) else 1)'; }
until_ok "$WAIT_S" "localsendd lists host1 (from lanyard's register)" ls_sees_lanyard
log "2. an IPv6 announcement answered by a register over IPv6: phone2 listed (verified), host1 known to localsendd"

# 3. lanyard -> localsendd over IPv6.
head -c 1000000 /dev/urandom >"$TMP/v6.bin"
lny 1 "$CMD_S" send phone2 -- "$TMP/v6.bin" >"$TMP/send3.out" 2>&1 || die "lanyard send phone2 failed: $(cat "$TMP/send3.out")"
until_ok "$WAIT_S" "the file in localsendd's folder" test -f "$LS2/v6.bin"
cmp "$TMP/v6.bin" "$LS2/v6.bin" || die "the file sent over IPv6 differs"
log "3. lanyard -> localsendd over IPv6: 1 MB identical"

netns_stop "$LS_PID" 5 || true
netns_stop "${SERVE_PID[1]}" 10 || true
netns_check_drops
echo "PASS localsend_v6.sh"
