#!/usr/bin/env bash
# tests/netns/locker.sh - the locker on five lab machines (namespaces, see lib.sh; mDNS on, safe
# inside them): h1 deposits, h2..h5 hold (each at most DEPOSIT_BUDGET for one owner, scrubbing
# what they hold every 2 s through the test hook LANYARD_TEST_SCRUB_SECS).
#
#   (a) `deposit --replicas 3` of a folder and a BIG_MIB file exits 0 naming its holders (and
#       `serve --json` says `deposit` held / placed);
#       `deposits --json` shows each with 3 verified holders; each holder that has a copy has it
#       whole (sha256), owner-only (0600), under its data dir, and nothing in its download dir
#   (b) a non-owner's `retrieve` fails "no such deposit"; a deposit over a holder's budget is
#       refused up front with the numbers ("host2 holds at most ... for you; ... used")
#   (c) kill -9 two holders of the file, delete the local copy: `retrieve` brings it back
#       verified from the third
#   (d) h1 restarted with --deposit-repair-after 5s; one holder of the file killed: another
#       holder gets a copy (holder to holder) and `deposits` shows 3 verified again; the killed
#       holder, back, drops its extra copy
#   (e) one holder's copy of the folder corrupted on disk: its scrub drops it, and the owner's
#       node has it copied to another holder: 3 verified again, the copy whole
#   (f) `id export` on h1, `id import` into a fresh data dir: `deposits` lists both deposits
#       there and `retrieve` brings the folder back verified
#   (g) the old data dir started again beside it (same identity, another port): a peer refuses
#       one of the two, which says "another lanyard node runs with this identity"
#
# Env: LANYARD_BIN (built with --features test-hooks), BIG_MIB (default 20), PATIENCE,
#      LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1 (see lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
NETNS_LOG_TAG=locker
need_root
command -v python3 >/dev/null || die "python3 not found"
# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

BIG_MIB=${BIG_MIB:-20}
PORT=7717
HOLDERS=(2 3 4 5)
DEPOSIT_BUDGET=$((BIG_MIB + 8))M
export LANYARD_TEST_SCRUB_SECS=2
export LANYARD_PASSPHRASE="lab locker test"

netns_setup 5
TMP=$NETNS_TMP
LOGS=(h1 h2 h3 h4 h5 h1b h1c)
netns_on_failure() { dump_logs locker "$1"; }

SRC=$TMP/src
mkdir -p "$SRC/proj/sub/empty"
echo "bonjour" >"$SRC/proj/sub/été.txt"
for n in 1 2 3; do head -c $((n * 200000)) /dev/urandom >"$SRC/proj/f$n.dat"; done
head -c $((BIG_MIB << 20)) /dev/urandom >"$SRC/big.bin"
head -c $((10 << 20)) /dev/urandom >"$SRC/extra.bin"
BIG_SUM=$(sha256sum <"$SRC/big.bin")
hashes() (cd "$1" && find . -type f ! -path '*/.lanyard-partial/*' -print0 | sort -z | xargs -0 -r sha256sum)
PROJ_SUMS=$(hashes "$SRC/proj")

start_holder() { serve_start "$1" "h$1" --download-dir "$TMP/in$1" --deposit-budget "$DEPOSIT_BUDGET"; }
for i in "${HOLDERS[@]}"; do start_holder "$i"; done
serve_start 1 h1 --download-dir "$TMP/in1"
declare -A HOST_OF=()
for i in 1 "${HOLDERS[@]}"; do
    expect_event "$TMP/h$i.jsonl" "$PATIENCE" event=listening >/dev/null
    HOST_OF[$(id_in "$i")]=$i
done
OWNER=$(id_in 1)
for i in "${HOLDERS[@]}"; do expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick="host$i" >/dev/null; done
log "h1 sees every holder"

# deposits_json [DATA_DIR]: h1's deposits as JSON lines (its serve's, or the one on DATA_DIR).
deposits_json() {
    if [ $# -gt 0 ]; then lny 1 "$PATIENCE" --data-dir "$1" deposits --json; else lny 1 "$PATIENCE" deposits --json; fi
}
# verified_hosts NAME [DATA_DIR]: the hosts (numbers) holding NAME with a verified copy, sorted.
verified_hosts() {
    local name=$1
    shift
    deposits_json "$@" | python3 -c '
import json, sys
name, hosts = sys.argv[1], dict(a.split("=") for a in sys.argv[2:])
for line in sys.stdin:
    d = json.loads(line)
    if d["name"] == name:
        print(" ".join(sorted(hosts.get(h["id"], "?") for h in d["holders"] if h["verified"])))
' "$name" $(for k in "${!HOST_OF[@]}"; do echo "$k=${HOST_OF[$k]}"; done)
}
field_of() {
    deposits_json | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if d["name"] == sys.argv[1]:
        print(d[sys.argv[2]])' "$1" "$2"
}
copy_dir() { echo "$TMP/h$1/locker/$OWNER/$2"; }

# (a) deposit with 3 replicas
lny 1 $((PATIENCE * 3)) deposit --replicas 3 "$SRC/proj" "$SRC/big.bin" >"$TMP/cmd-deposit.out" 2>"$TMP/cmd-deposit.err" ||
    die "deposit exited non-zero: $(cat "$TMP/cmd-deposit.out" "$TMP/cmd-deposit.err")"
cat "$TMP/cmd-deposit.out" >&2
[ "$(grep -c '^deposited .*3 of 3 copies verified, on host' "$TMP/cmd-deposit.out")" = 2 ] || die "(a) deposit did not name 3 verified holders for both"
BIG_ID=$(field_of big.bin id)
PROJ_ID=$(field_of proj id)
read -r -a BIG_HOLDERS <<<"$(verified_hosts big.bin)"
read -r -a PROJ_HOLDERS <<<"$(verified_hosts proj)"
[ "${#BIG_HOLDERS[@]}" = 3 ] && [ "${#PROJ_HOLDERS[@]}" = 3 ] || die "(a) deposits shows ${BIG_HOLDERS[*]} / ${PROJ_HOLDERS[*]}, not 3 verified each"
for i in "${BIG_HOLDERS[@]}"; do
    f="$(copy_dir "$i" "$BIG_ID")/big.bin"
    [ "$(sha256sum <"$f")" = "$BIG_SUM" ] || die "(a) h$i's copy of big.bin differs"
    [ "$(stat -c %a "$f")" = 600 ] || die "(a) h$i's copy of big.bin is mode $(stat -c %a "$f")"
done
for i in "${PROJ_HOLDERS[@]}"; do
    [ "$(hashes "$(copy_dir "$i" "$PROJ_ID")/proj")" = "$PROJ_SUMS" ] || die "(a) h$i's copy of proj differs"
done
for i in "${HOLDERS[@]}"; do
    [ -z "$(find "$TMP/in$i" -type f 2>/dev/null)" ] || die "(a) h$i has files in its download dir"
done
for i in "${BIG_HOLDERS[@]}"; do
    expect_event "$TMP/h$i.jsonl" "$PATIENCE" event=deposit change=held name=big.bin peer="$OWNER" >/dev/null || die "(a) h$i: no deposit event"
done
expect_event "$TMP/h1.jsonl" "$PATIENCE" event=deposit change=placed name=big.bin >/dev/null || die "(a) h1: no deposit event"
log "(a) deposited: big.bin on ${BIG_HOLDERS[*]}, proj on ${PROJ_HOLDERS[*]}"

# (b) a non-owner cannot retrieve; a budget refuses
if lny 5 "$PATIENCE" retrieve big.bin --to "$TMP/stolen" >"$TMP/cmd-stranger.out" 2>"$TMP/cmd-stranger.err"; then
    die "(b) a non-owner's retrieve succeeded"
fi
grep -q "no such deposit" "$TMP/cmd-stranger.err" || die "(b) non-owner's retrieve: $(cat "$TMP/cmd-stranger.err")"
[ ! -e "$TMP/stolen" ] || [ -z "$(find "$TMP/stolen" -type f)" ] || die "(b) a non-owner got files"
H=${BIG_HOLDERS[0]}
if lny 1 "$PATIENCE" deposit --replicas 1 --to "host$H" "$SRC/extra.bin" >"$TMP/cmd-budget.out" 2>"$TMP/cmd-budget.err"; then
    die "(b) a deposit over host$H's budget succeeded"
fi
grep -q "host$H holds at most $((BIG_MIB + 8)) MiB for you; .* used" "$TMP/cmd-budget.out" ||
    die "(b) budget refusal: $(cat "$TMP/cmd-budget.out" "$TMP/cmd-budget.err")"
log "(b) non-owner refused; budget refused: $(grep 'holds at most' "$TMP/cmd-budget.out")"

# (c) two holders of big.bin killed; retrieved from the third
KILLED=("${BIG_HOLDERS[0]}" "${BIG_HOLDERS[1]}")
for i in "${KILLED[@]}"; do kill -9 "${SERVE_PID[i]}"; done
for i in "${KILLED[@]}"; do wait_for "$PATIENCE" bash -c "! kill -0 ${SERVE_PID[i]} 2>/dev/null" || die "h$i did not die"; done
rm -f "$SRC/big.bin.gone" && mv "$SRC/big.bin" "$SRC/big.bin.gone"
lny 1 $((PATIENCE * 2)) retrieve big.bin --to "$TMP/back" >"$TMP/cmd-retrieve.out" 2>"$TMP/cmd-retrieve.err" ||
    die "(c) retrieve failed: $(cat "$TMP/cmd-retrieve.out" "$TMP/cmd-retrieve.err")"
[ "$(sha256sum <"$TMP/back/big.bin")" = "$BIG_SUM" ] || die "(c) retrieved big.bin differs"
grep -q "retrieved big.bin from host${BIG_HOLDERS[2]}" "$TMP/cmd-retrieve.out" || die "(c) $(cat "$TMP/cmd-retrieve.out")"
log "(c) $(cat "$TMP/cmd-retrieve.out")"
for i in "${KILLED[@]}"; do start_holder "$i"; done
for i in "${KILLED[@]}"; do expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick="host$i" >/dev/null; done

# (d) repair: h1 now replaces a holder away over 5 s
netns_stop "${SERVE_PID[1]}" >/dev/null || true
serve_start 1 h1 --download-dir "$TMP/in1" --deposit-repair-after 5s
for i in "${HOLDERS[@]}"; do expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick="host$i" >/dev/null; done
GONE=${BIG_HOLDERS[0]}
SPARE=$(for i in "${HOLDERS[@]}"; do [[ " ${BIG_HOLDERS[*]} " == *" $i "* ]] || echo "$i"; done)
kill -9 "${SERVE_PID[GONE]}"
repaired() { [ "$(verified_hosts big.bin)" = "$(echo "${BIG_HOLDERS[1]} ${BIG_HOLDERS[2]} $SPARE" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" ]; }
wait_for "$PATIENCE" repaired || die "(d) big.bin not repaired onto h$SPARE: $(verified_hosts big.bin)"
[ "$(sha256sum <"$(copy_dir "$SPARE" "$BIG_ID")/big.bin")" = "$BIG_SUM" ] || die "(d) h$SPARE's new copy differs"
expect_event "$TMP/h1.jsonl" "$PATIENCE" event=deposit change=copied name=big.bin >/dev/null || die "(d) h1: no copied event"
log "(d) h$GONE replaced by h$SPARE"
start_holder "$GONE"
wait_for "$PATIENCE" bash -c "[ ! -e '$(copy_dir "$GONE" "$BIG_ID")' ]" || die "(d) h$GONE kept its extra copy"
log "(d) h$GONE, back, dropped its extra copy"

# (e) a corrupted copy of proj: scrubbed away, then repaired elsewhere. (While h$GONE was away,
# proj may have moved too: its holders now.)
three_online() { [ "$(verified_hosts proj | wc -w)" = 3 ] && [[ " $(verified_hosts proj) " != *" $GONE "* || -e "$(copy_dir "$GONE" "$PROJ_ID")" ]]; }
wait_for "$PATIENCE" three_online || die "(e) proj has no 3 verified copies: $(verified_hosts proj)"
read -r -a PROJ_HOLDERS <<<"$(verified_hosts proj)"
BAD=${PROJ_HOLDERS[0]}
python3 - "$(copy_dir "$BAD" "$PROJ_ID")/proj/f2.dat" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000)
    b = f.read(1)
    f.seek(1000)
    f.write(bytes([b[0] ^ 1]))
PY
PSPARE=$(for i in "${HOLDERS[@]}"; do [[ " ${PROJ_HOLDERS[*]} " == *" $i "* ]] || echo "$i"; done)
proj_repaired() { [ "$(verified_hosts proj)" = "$(echo "${PROJ_HOLDERS[1]} ${PROJ_HOLDERS[2]} $PSPARE" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" ]; }
wait_for "$PATIENCE" proj_repaired || die "(e) proj not repaired onto h$PSPARE: $(verified_hosts proj)"
[ "$(hashes "$(copy_dir "$PSPARE" "$PROJ_ID")/proj")" = "$PROJ_SUMS" ] || die "(e) h$PSPARE's new copy differs"
[ ! -e "$(copy_dir "$BAD" "$PROJ_ID")" ] || die "(e) h$BAD still has its corrupted copy"
log "(e) h$BAD's corrupted copy dropped, h$PSPARE holds it now"

# (f) the identity on a fresh data dir
lny 1 "$PATIENCE" id export "$TMP/me.age" >&2 || die "(f) id export failed"
netns_stop "${SERVE_PID[1]}" >/dev/null || true
lny 1 "$PATIENCE" --data-dir "$TMP/h1b" id import "$TMP/me.age" >&2 || die "(f) id import failed"
serve_start 1 h1b --data-dir "$TMP/h1b" --download-dir "$TMP/in1b"
for i in "${HOLDERS[@]}"; do expect_event "$TMP/h1b.jsonl" "$PATIENCE" event=peer_up nick="host$i" >/dev/null; done
[ "$(deposits_json "$TMP/h1b" | python3 -c 'import json,sys; print(sorted(json.loads(l)["name"] for l in sys.stdin))')" = "['big.bin', 'proj']" ] ||
    die "(f) the imported identity does not list both deposits: $(deposits_json "$TMP/h1b")"
lny 1 $((PATIENCE * 2)) --data-dir "$TMP/h1b" retrieve proj --to "$TMP/back-f" >"$TMP/cmd-retrieve-f.out" 2>"$TMP/cmd-retrieve-f.err" ||
    die "(f) retrieve failed: $(cat "$TMP/cmd-retrieve-f.out" "$TMP/cmd-retrieve-f.err")"
[ "$(hashes "$TMP/back-f/proj")" = "$PROJ_SUMS" ] || die "(f) the retrieved folder differs"
log "(f) $(cat "$TMP/cmd-retrieve-f.out")"

# (g) the old data dir with the same identity started again beside it: one of the two is refused,
# saying why, instead of both fighting over the id
PORT=7718 serve_start 1 h1c --data-dir "$TMP/h1" --download-dir "$TMP/in1"
twin_said() { grep -h '"event":"warning"' "$TMP/h1b.jsonl" "$TMP/h1c.jsonl" 2>/dev/null | grep -q "another lanyard node runs with this identity"; }
wait_for "$PATIENCE" twin_said || die "(g) no node was refused for sharing the identity"
log "(g) $(grep -h '"event":"warning"' "$TMP/h1b.jsonl" "$TMP/h1c.jsonl" | grep -m1 "this identity")"

log "PASS"
