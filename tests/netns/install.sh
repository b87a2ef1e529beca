#!/usr/bin/env bash
# tests/netns/install.sh - a lab machine shared by two users, and a machine whose firewall
# drops multicast (network namespaces, see lib.sh; mDNS stays inside them).
#
#   1. Two users on h1 start `lanyard serve` without --port: the first listens on 7717, the
#      second on 7718 and says so once (a `warning` line); they find each other over mDNS, and
#      h2 finds both, each at its real port; `lanyard id` shows the second's port. With
#      --port 7717 a third user gets an error.
#   2. `lanyard doctor` on h2 (nothing dropped) passes its mDNS check; on h3, whose nft drops
#      multicast, it exits 1 naming the multicast check, and a `serve` there that finds nobody
#      says, once, what to check (UDP 5353, its TCP port, --peer).
#
# Env: LANYARD_BIN, LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1 (see lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root
command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

netns_setup 3
TMP=$NETNS_TMP
LOGS=(ada bob h2 h3)
netns_on_failure() {
    dump_logs install "$1"
    local f
    for f in "$TMP"/doctor*.out; do
        [ -e "$f" ] && { echo "== $(basename "$f")" >&2; cat "$f" >&2; }
    done
    return 0
}

# user_serve I NAME [FLAGS...]: `serve --json` for user NAME (own home and data dir) on host I,
# without --port; events in NAME.jsonl.
user_serve() {
    local i=$1 name=$2 HENV
    shift 2
    host_env "$i"
    netns_spawn "$i" "$TMP/$name.jsonl" "$TMP/$name.err" "${HENV[@]}" HOME="$TMP/home-$name" \
        "$LANYARD_BIN" serve --json --nick "$name" --data-dir "$TMP/$name" "$@"
    log "h$i: $name's serve started (pid $NETNS_PID)"
}

# port_of FILE: the port of the listening line's address.
port_of() {
    expect_event "$1" "$PATIENCE" event=listening | python3 -c 'import json,sys; print(json.load(sys.stdin)["addr"].rsplit(":",1)[1])'
}

user_id() {
    lny "$1" "$PATIENCE" id --json --data-dir "$TMP/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# 1. Two users, one machine.
user_serve 1 ada
[ "$(port_of "$TMP/ada.jsonl")" = 7717 ] || die "ada: not on 7717"
user_serve 1 bob
BOB_PORT=$(port_of "$TMP/bob.jsonl")
[ "$BOB_PORT" = 7718 ] || die "bob listens on $BOB_PORT, not 7718"
moved=$(expect_event "$TMP/bob.jsonl" "$PATIENCE" event=warning) || die "bob did not say his port moved"
grep -q "port 7717 is taken" <<<"$moved" || die "bob's warning: $moved"
user_serve 2 h2
ADA=$(user_id 1 ada)
BOB=$(user_id 1 bob)
expect_event "$TMP/ada.jsonl" "$PATIENCE" event=peer_up id="$BOB" >/dev/null || die "ada never saw bob"
expect_event "$TMP/bob.jsonl" "$PATIENCE" event=peer_up id="$ADA" >/dev/null || die "bob never saw ada"
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=peer_up id="$ADA" >/dev/null || die "h2 never saw ada"
expect_event "$TMP/h2.jsonl" "$PATIENCE" event=peer_up id="$BOB" >/dev/null || die "h2 never saw bob"
# Where h2 would dial each: the port each advertised (its connection may have come from another).
lny 2 "$PATIENCE" peers --json --wait 0 --data-dir "$TMP/h2" >"$TMP/h2-peers.json" || die "h2: peers failed"
python3 - "$TMP/h2-peers.json" "$ADA=$(netns_addr 1):7717" "$BOB=$(netns_addr 1):7718" <<'PY' || die "h2 lists the wrong addresses: $(cat "$TMP/h2-peers.json")"
import json, sys
peers = {p["id"]: p.get("addr") for p in json.load(open(sys.argv[1]))}
for want in sys.argv[2:]:
    pid, addr = want.split("=")
    if peers.get(pid) != addr:
        sys.exit("h2 lists %s at %r, not %s" % (pid, peers.get(pid), addr))
PY
log "ok: ada on 7717 and bob on 7718 share h1 and find each other; h2 reaches both at their ports"
[ "$(grep -c '"event":"warning"' "$TMP/bob.jsonl")" = 1 ] || die "bob said more than once: $(grep warning "$TMP/bob.jsonl")"
lny 1 "$PATIENCE" id --data-dir "$TMP/bob" >"$TMP/bob-id.out" || die "bob: id failed"
grep -qE '^listening +0\.0\.0\.0:7718$' "$TMP/bob-id.out" || die "bob's id does not show 7718: $(cat "$TMP/bob-id.out")"
if lny 1 "$PATIENCE" serve --port 7717 --data-dir "$TMP/cyd" >"$TMP/cyd.out" 2>"$TMP/cmd-cyd.err"; then
    die "cyd: serve --port 7717 on a taken port ran"
fi
grep -q "cannot listen on port 7717" "$TMP/cmd-cyd.err" || die "cyd: unclear error: $(cat "$TMP/cmd-cyd.err")"
: >"$TMP/cmd-cyd.err" # expected failure: not a diagnostic
log "ok: lanyard id shows 7718; --port 7717 there is an error"

# 2. doctor. h2 (a node runs there) passes every check.
lny 2 "$PATIENCE" doctor --data-dir "$TMP/h2" >"$TMP/doctor2.out" || die "doctor on h2 failed: $(cat "$TMP/doctor2.out")"
grep -qE '^ok +multicast \(mDNS\)' "$TMP/doctor2.out" || die "h2: mDNS check did not pass: $(cat "$TMP/doctor2.out")"
grep -qE "^ok +tcp port .*7717 \(the running node's\)" "$TMP/doctor2.out" || die "h2: port check: $(cat "$TMP/doctor2.out")"
log "ok: doctor on h2 passes"

# h3 drops multicast both ways.
netns_exec 3 nft -f - <<'NFT'
table inet lanyard_test {
    chain out { type filter hook output priority 0; ip daddr 224.0.0.0/4 drop; }
    chain in { type filter hook input priority 0; ip daddr 224.0.0.0/4 drop; }
}
NFT
user_serve 3 h3
rc=0
lny 3 "$PATIENCE" doctor --data-dir "$TMP/h3doc" >"$TMP/doctor3.out" || rc=$?
[ "$rc" = 1 ] || die "doctor with multicast dropped exited $rc, not 1: $(cat "$TMP/doctor3.out")"
grep -qE '^FAIL +multicast \(mDNS\) +no answer' "$TMP/doctor3.out" || die "doctor did not fail the multicast check: $(cat "$TMP/doctor3.out")"
grep -qE '^failed: multicast \(mDNS\)$' "$TMP/doctor3.out" || die "doctor's verdict: $(cat "$TMP/doctor3.out")"
log "ok: doctor names the multicast check failing: $(grep FAIL "$TMP/doctor3.out")"
hint=$(expect_event "$TMP/h3.jsonl" "$PATIENCE" event=warning) || die "h3: no hint although alone"
for want in "UDP port 5353" "TCP port 7717" "--peer HOST:PORT" "lanyard doctor"; do
    grep -qF -- "$want" <<<"$hint" || die "h3's hint does not name '$want': $hint"
done
[ "$(grep -c '"event":"warning"' "$TMP/h3.jsonl")" = 1 ] || die "h3 hinted more than once"
for f in ada bob h2; do
    [ "$(grep -c 'no peer found' "$TMP/$f.jsonl")" = 0 ] || die "$f hinted although it had peers"
done
log "ok: h3, alone, said once what to check"
netns_check_drops
log "PASS"
