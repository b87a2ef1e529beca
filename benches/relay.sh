#!/usr/bin/env bash
# benches/relay.sh - does a class get a file in about the time one machine does?  A send to
# 1, 3 and 6 peers, relayed (`lanyard send A B C ...`: a chain, each forwards what it has
# verified) and as parallel uploads (`--no-relay`), on links where the sender's uplink, not the
# CPU, is the limit.  Prints figures and ratios; never asserts on timing.
#
# Seven "lab machines" (network namespaces on one bridge, see tests/netns/lib.sh), mDNS on
# (inside our namespaces only; relays find each other by it), recipients named by address in
# chain order h2, h3, ... .  Every machine's uplink is limited: on each host's eth0 (its side of
# the veth to the bridge), egress only,
#     tc qdisc replace dev eth0 root tbf rate ${RATE_MBIT}mbit burst 256kb latency 20ms
# (burst 256 KiB: a few 64 KiB GSO packets, which tbf would otherwise split; latency 20 ms: the
# queue holds 20 ms of traffic at that rate, ~500 KB at 200 Mbit/s).  Downlinks are not limited,
# as on a switch where every port has the same speed each way and only uplinks are contended.
#
# Each round (the order of relayed / parallel alternates between rounds): SIZE_MIB to 1, 3 and 6
# peers in both modes, and the same file over `nc` from h1 to h2 (what the link itself moves).
# A run's time is from just before `lanyard send` starts until it exits 0 (every recipient
# verified every file); then every copy is compared with the source, and removed.  Receivers
# write to a tmpfs mounted for the run (RECV_ON_DISK=1: to disk), since 6 receivers' disk
# writes on one shared disk would measure the disk.
#
# Env: LANYARD_BIN (default target/release/lanyard), ROUNDS (default 3), SIZE_MIB (default 128),
#      RATE_MBIT (default 200), NO_RELAY_FLAG (default --no-relay), RECV_ON_DISK=1,
#      LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$HERE/../tests/netns/lib.sh"

NETNS_LOG_TAG=bench/relay
need_root
for c in nc python3 tc; do
    command -v "$c" >/dev/null || die "$c not found (Debian: netcat-openbsd, python3, iproute2)"
done
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lanyard.sh
. "$HERE/../tests/netns/lanyard.sh"
lanyard_release_bin

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-128}
RATE_MBIT=${RATE_MBIT:-200}
NO_RELAY_FLAG=${NO_RELAY_FLAG---no-relay}
TBF=(tbf rate "${RATE_MBIT}mbit" burst 256kb latency 20ms)
PEERS=(1 3 6)
PORT=7717
NC_PORT=7718
HOSTS=7

netns_setup "$HOSTS"
TMP=$NETNS_TMP
log "binary $LANYARD_BIN; $ROUNDS rounds; ${SIZE_MIB} MiB; uplinks: ${TBF[*]}; parallel flag '${NO_RELAY_FLAG}'"

SRC=$TMP/src
mkdir -p "$SRC"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC/big.bin"
RECV=$TMP/recv
mkdir -p "$RECV"
RECV_NOTE="receivers write to disk"
if [ -z "${RECV_ON_DISK:-}" ]; then
    mount -t tmpfs -o size=$((SIZE_MIB * 7 + 512))m lanyard-bench "$RECV" || die "cannot mount a tmpfs (set RECV_ON_DISK=1)"
    RECV_NOTE="receivers write to tmpfs"
    netns_on_failure() { umount -l "$RECV" 2>/dev/null || true; }
fi

for ((i = 1; i <= HOSTS; i++)); do
    netns_exec "$i" tc qdisc replace dev eth0 root "${TBF[@]}" || die "tc on h$i failed"
done
declare -a SPEC=()
for ((i = 2; i <= HOSTS; i++)); do
    SPEC[i]="$(netns_addr "$i"):$PORT"
    serve_start "$i" "h$i" --accept-all --download-dir "$RECV/in$i"
done
for ((i = 2; i <= HOSTS; i++)); do
    wait_for "$PATIENCE" grep -q '"listening"' "$TMP/h$i.jsonl" || die "h$i did not start"
done

# lanyard_run MODE N: one send of big.bin to h2..h(N+1); appends its ms to $TMP/MODE-N.
lanyard_run() {
    local mode=$1 n=$2 i t0 t1
    local -a flags=() specs=()
    [ "$mode" = relay ] || [ -z "$NO_RELAY_FLAG" ] || flags=("$NO_RELAY_FLAG")
    for ((i = 2; i <= n + 1; i++)); do specs+=("${SPEC[i]}"); done
    t0=$(netns_now_ms)
    lny 1 "$((PATIENCE * 5))" send "${flags[@]}" "${specs[@]}" -- "$SRC/big.bin" >"$TMP/send.out" 2>"$TMP/send.err" ||
        die "$mode send to $n failed: $(tail -n 3 "$TMP/send.out" "$TMP/send.err")"
    t1=$(netns_now_ms)
    for ((i = 2; i <= n + 1; i++)); do
        cmp -s "$SRC/big.bin" "$RECV/in$i/big.bin" || die "$mode send to $n: h$i's copy differs"
        rm -rf "${RECV:?}/in$i"
    done
    echo "$((t1 - t0))" >>"$TMP/$mode-$n"
    log "$mode to $n: $((t1 - t0)) ms"
}

# nc_run: the same file over one plain TCP connection h1 -> h2; appends its ms to $TMP/nc.
nc_run() {
    local ms
    mkdir -p "$RECV/nc"
    ms=$(nc_copy 1 2 "$SRC/big.bin" "$RECV/nc/big.bin")
    rm -rf "${RECV:?}/nc"
    echo "$ms" >>"$TMP/nc"
    log "nc to 1: $ms ms"
}

for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS"
    modes=(relay parallel)
    ((r % 2)) || modes=(parallel relay)
    nc_run
    for n in "${PEERS[@]}"; do
        for m in "${modes[@]}"; do lanyard_run "$m" "$n"; done
    done
done

[ -n "${RECV_ON_DISK:-}" ] || umount "$RECV"

python3 - "$TMP" "$SIZE_MIB" "$RATE_MBIT" "$RECV_NOTE" "$NO_RELAY_FLAG" "${PEERS[@]}" <<'PY'
import os, statistics, sys
tmp, mib, rate, note, flag, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], [int(p) for p in sys.argv[6:]]
def runs(name):
    return [int(l) for l in open(os.path.join(tmp, name)) if l.strip()]
def med(name):
    return statistics.median(runs(name))
print()
print(f"=== lanyard relay benchmark: {mib} MiB, every uplink {rate} Mbit/s (tbf), {note} ===")
nc = med("nc")
print(f"{'nc h1 -> h2 (the link)':28s} median {nc:7.0f} ms  {mib * 1.048576 / (nc / 1000):6.1f} MB/s   runs(ms) {runs('nc')}")
for mode, label in (("relay", "relayed"), ("parallel", f"parallel ({flag or 'no flag'})")):
    one = med(f"{mode}-1")
    for n in peers:
        m = med(f"{mode}-{n}")
        print(f"{label + ' to ' + str(n):28s} median {m:7.0f} ms  {m / one:5.2f}x one peer  runs(ms) {runs(f'{mode}-{n}')}")
six, one = med(f"relay-{peers[-1]}"), med("relay-1")
ok = "yes" if six <= 1.3 * one else "no"
print(f"relayed to {peers[-1]} <= 1.3x one peer (the target): {ok} ({six / one:.2f}x); "
      f"parallel to {peers[-1]}: {med(f'parallel-{peers[-1]}') / med('parallel-1'):.2f}x (about {peers[-1]}x expected)")
print(f"one peer against nc on the same link: {nc / one:.2f}x nc's throughput")
PY
