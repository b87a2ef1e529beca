#!/usr/bin/env bash
# benches/locker.sh - what the locker costs against what the network gives, and how soon it
# repairs.  Three figures, each over ROUNDS rounds (median and every round printed); never
# asserts on timing:
#   deposit   `lanyard deposit --replicas 3` of a SIZE_MIB file (one upload, relayed through
#             the three holders) against one plain `lanyard send` of the same file to one peer;
#             goal: deposit <= 1.3x the send
#   retrieve  `lanyard retrieve` of that deposit from a holder against `nc` from a holder to the
#             owner on the same kind of link; goal: >= 0.8x nc's throughput
#   repair    a holder of a small deposit is killed (-9); from its death + REPAIR_S to the moment
#             the new holder starts receiving its copy (its `transfer_started` line); goal: <= 10 s
# The owner runs with --deposit-repair-after REPAIR_S throughout (its check of its deposits, a
# listing asked of each holder every REPAIR_S / 2, runs during the other figures too).
#
# Five "lab machines" (network namespaces on one bridge, see tests/netns/lib.sh): h1 the owner,
# h2..h5 holders (the deposit's three are chosen by placement among the four; the fourth takes
# the repair copy).  Every machine's uplink is limited, as in benches/relay.sh: on each host's
# eth0, egress only,
#     tc qdisc replace dev eth0 root tbf rate ${RATE_MBIT}mbit burst 256kb latency 20ms
# so that the link, not this machine's CPU, is what is measured (RATE_MBIT=0: no limit).  Every
# data dir (the holders' deposit stores) and the retrieve's and nc's targets are on tmpfs
# mounts made for the run, so the shared disk is not measured either.  A run's time is from just
# before the command starts until it exits 0; each copy is compared with the source.
#
# Env: LANYARD_BIN (default target/release/lanyard), ROUNDS (default 3), SIZE_MIB (default
#      256), RATE_MBIT (default 200), REPAIR_S (default 5), LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$HERE/../tests/netns/lib.sh"

NETNS_LOG_TAG=bench/locker
need_root
for c in nc python3 tc; do
    command -v "$c" >/dev/null || die "$c not found (Debian: netcat-openbsd, python3, iproute2)"
done
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lanyard.sh
. "$HERE/../tests/netns/lanyard.sh"
lanyard_release_bin

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-256}
RATE_MBIT=${RATE_MBIT:-200}
REPAIR_S=${REPAIR_S:-5}
PORT=7717
HOSTS=5
HOLDERS=(2 3 4 5)

netns_setup "$HOSTS"
TMP=$NETNS_TMP
LOGS=(h1 h2 h3 h4 h5)
MOUNTS=()
unmount_all() {
    local m
    for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
netns_on_failure() {
    dump_logs bench/locker "$1"
    unmount_all
}
# tmpfs DIR MIB: a tmpfs of MIB MiB on DIR for the run.
tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2m" lanyard-bench "$1" || die "cannot mount a tmpfs on $1"
    MOUNTS+=("$1")
}
# Holders keep up to ROUNDS deposits at once (each dropped after its round, but a holder away
# keeps its copy until it is back); the owner keeps no copy.
for i in "${HOLDERS[@]}"; do tmpfs "$TMP/h$i" $((SIZE_MIB * 2 + 256)); done
tmpfs "$TMP/h1" 256
tmpfs "$TMP/recv" $((SIZE_MIB * 2 + 256))
SRC=$TMP/src
tmpfs "$SRC" $((SIZE_MIB + 64))
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC/big.bin"
head -c $((4 << 20)) /dev/urandom >"$SRC/small.bin"

if [ "$RATE_MBIT" != 0 ]; then
    for ((i = 1; i <= HOSTS; i++)); do
        netns_exec "$i" tc qdisc replace dev eth0 root tbf rate "${RATE_MBIT}mbit" burst 256kb latency 20ms || die "tc on h$i failed"
    done
    LINK="every uplink ${RATE_MBIT} Mbit/s (tbf)"
else
    LINK="links not limited"
fi
log "binary $LANYARD_BIN; $ROUNDS rounds; ${SIZE_MIB} MiB; $LINK; repair after ${REPAIR_S}s"

start_holder() { serve_start "$1" "h$1" --download-dir "$TMP/recv/in$1" --accept-all; }
for i in "${HOLDERS[@]}"; do start_holder "$i"; done
serve_start 1 h1 --download-dir "$TMP/recv/in1" --deposit-repair-after "${REPAIR_S}s"
declare -A HOST_OF=()
for i in 1 "${HOLDERS[@]}"; do
    expect_event "$TMP/h$i.jsonl" "$PATIENCE" event=listening >/dev/null || die "h$i did not start"
    HOST_OF[$(id_in "$i")]=$i
done
all_up() { for i in "${HOLDERS[@]}"; do expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up nick="host$i" >/dev/null || die "h1 does not see h$i"; done; }
all_up
OWNER=$(id_in 1)

# holders_of NAME: the hosts holding a verified copy of h1's deposit NAME, one per line.
holders_of() {
    lny 1 "$PATIENCE" deposits --json | python3 -c '
import json, sys
name, host_of = sys.argv[1], dict(a.split("=") for a in sys.argv[2:])
for line in sys.stdin:
    d = json.loads(line)
    if d["name"] == name:
        for h in d["holders"]:
            if h["verified"]:
                print(host_of[h["id"]])
' "$1" $(for k in "${!HOST_OF[@]}"; do echo "$k=${HOST_OF[$k]}"; done)
}

# timed FILE CMD...: run CMD (a lanyard command in h1), append its ms to $TMP/FILE.
timed() {
    local what=$1 t0 t1
    shift
    t0=$(netns_now_ms)
    lny 1 $((PATIENCE * 10)) "$@" >"$TMP/cmd-$what.out" 2>"$TMP/cmd-$what.err" ||
        die "$what failed: $(tail -n 3 "$TMP/cmd-$what.out" "$TMP/cmd-$what.err")"
    t1=$(netns_now_ms)
    echo "$((t1 - t0))" >>"$TMP/$what"
    log "$what: $((t1 - t0)) ms"
}

# nc_run FROM TO: the big file over one plain TCP connection hFROM -> hTO.
nc_run() {
    local ms
    mkdir -p "$TMP/recv/nc"
    ms=$(nc_copy "$1" "$2" "$SRC/big.bin" "$TMP/recv/nc/big.bin")
    rm -rf "$TMP/recv/nc"
    echo "$ms" >>"$TMP/nc"
    log "nc h$1 -> h$2: $ms ms"
}

for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: deposit, send, retrieve, nc"
    # Another name each round: another deposit (the same name and content would change nothing).
    name=big-r$r.bin
    ln "$SRC/big.bin" "$SRC/$name"
    timed deposit deposit --replicas 3 "$SRC/$name"
    grep -q "3 of 3 copies verified" "$TMP/cmd-deposit.out" || die "deposit: $(cat "$TMP/cmd-deposit.out")"
    mapfile -t held < <(holders_of "$name")
    [ "${#held[@]}" = 3 ] || die "deposit: ${held[*]} hold it, not three"
    for i in "${held[@]}"; do
        cmp -s "$SRC/big.bin" "$TMP/h$i/locker/$OWNER/"*"/$name" || die "h$i's copy differs"
    done
    timed send send "$(netns_addr "${held[0]}"):$PORT" -- "$SRC/$name"
    cmp -s "$SRC/big.bin" "$TMP/recv/in${held[0]}/$name" || die "the sent copy differs"
    rm -f "$TMP/recv/in${held[0]}/$name"
    timed retrieve retrieve "$name" --to "$TMP/recv/back"
    cmp -s "$SRC/big.bin" "$TMP/recv/back/$name" || die "the retrieved copy differs"
    rm -rf "$TMP/recv/back"
    nc_run "${held[0]}" 1
    lny 1 "$PATIENCE" deposit --drop "$name" >/dev/null || die "drop failed"
    rm -f "$SRC/$name"
done

for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: repair"
    name=small-r$r.bin
    ln "$SRC/small.bin" "$SRC/$name"
    lny 1 $((PATIENCE * 3)) deposit --replicas 3 "$SRC/$name" >"$TMP/cmd-small.out" 2>&1 || die "small deposit: $(cat "$TMP/cmd-small.out")"
    mapfile -t held < <(holders_of "$name")
    [ "${#held[@]}" = 3 ] || die "repair: ${held[*]} hold $name, not three"
    spare=$(for i in "${HOLDERS[@]}"; do [[ " ${held[*]} " == *" $i "* ]] || echo "$i"; done)
    gone=${held[0]}
    t_kill=$(netns_now_ms)
    kill -9 "${SERVE_PID[gone]}"
    # The spare's first receive after the kill is the repair copy.
    started=$(python3 - "$TMP/h$spare.jsonl" "$t_kill" "$((PATIENCE * 3))" <<'PY'
import json, sys, time
path, after, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    for line in open(path, encoding="utf-8"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "transfer_started" and e.get("direction") == "receive" and e.get("ts_ms", 0) >= after:
            print(e["ts_ms"])
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
    ) || die "repair: h$spare never started receiving a copy of $name"
    expect_event "$TMP/h1.jsonl" $((PATIENCE * 3)) event=deposit change=copied name="$name" >/dev/null || die "repair: no copied event for $name"
    late=$((started - t_kill - REPAIR_S * 1000))
    echo "$late" >>"$TMP/repair"
    log "repair of $name: h$gone killed, h$spare started receiving its copy $((started - t_kill)) ms later ($late ms after the repair delay)"
    ups=$(grep -c "\"event\":\"peer_up\".*\"nick\":\"host$gone\"" "$TMP/h1.jsonl" || true)
    start_holder "$gone"
    wait_for "$PATIENCE" bash -c "[ \$(grep -c '\"event\":\"peer_up\".*\"nick\":\"host$gone\"' '$TMP/h1.jsonl') -gt $ups ]" ||
        die "h$gone did not come back"
    lny 1 "$PATIENCE" deposit --drop "$name" >/dev/null || die "drop failed"
    rm -f "$SRC/$name"
done

for ((i = 1; i <= HOSTS; i++)); do
    [ -n "${SERVE_PID[i]:-}" ] && netns_stop "${SERVE_PID[i]}" >/dev/null 2>&1 || true
done
unmount_all

python3 - "$TMP" "$SIZE_MIB" "$LINK" "$REPAIR_S" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import os, statistics, sys
tmp, mib, link, repair_s, cpus, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def runs(name):
    return [int(l) for l in open(os.path.join(tmp, name)) if l.strip()]
def med(name):
    return statistics.median(runs(name))
mb = mib * 1.048576
print()
print(f"=== lanyard locker benchmark: {mib} MiB, {link}, data dirs on tmpfs; {cpus} CPUs, load {load} at the end ===")
for name, label in (("deposit", "deposit --replicas 3"), ("send", "send to one peer"), ("retrieve", "retrieve"), ("nc", "nc holder -> owner")):
    m = med(name)
    print(f"{label:24s} median {m:7.0f} ms  {mb / (m / 1000):6.1f} MB/s   runs(ms) {runs(name)}")
d, s = med("deposit"), med("send")
print(f"deposit / send: {d / s:.2f}x (goal <= 1.3x): {'met' if d <= 1.3 * s else 'MISSED'}")
r, n = med("retrieve"), med("nc")
print(f"retrieve throughput / nc's: {n / r:.2f}x (goal >= 0.8x): {'met' if n / r >= 0.8 else 'MISSED'}")
rep = med("repair")
print(f"repair start after death + {repair_s} s: median {rep / 1000:.1f} s, runs(ms) {runs('repair')} (goal <= 10 s): {'met' if rep <= 10000 else 'MISSED'}")
PY
