#!/usr/bin/env bash
# benches/localsend.sh - LocalSend's figures: a SIZE_MIB upload from a LocalSend client to
# lanyard and from lanyard to a LocalSend receiver, next to nc on the same link. Prints
# figures and ratios; never asserts on timing.
#
# Three "lab machines" (network namespaces, see tests/netns/lib.sh), multicast inside them:
#   h1: `lanyard serve --accept-all` (release build), files into a tmpfs
#   h2: localsendd (PyPI 0.1.1, alias phone2), files into the tmpfs
#   h3: a second localsendd (alias phone3), for localsendd's own ceiling
# Each round, each in turn (the receiver's file removed after it):
#   nc            `nc -N` (h2) into `nc -l > file` (h1): the link and the disk, no TLS
#   ls->lanyard   `localsendctl send --wait` (localsendd in h2) to lanyard (h1)
#   curl->lanyard prepare-upload, then the upload by `curl --http1.1 -T` (h2) to lanyard (h1):
#                 lanyard's receive without python's in the way
#   lanyard->ls   `lanyard send phone2` (h1) to localsendd (h2)
#   ls->ls        localsendd (h2) to localsendd (h3): what python's TLS and HTTP manage alone
# A time runs from just before the sender starts until the sender is done (localsendctl's
# --wait, curl, `lanyard send` exit once the receiver answered the last upload; nc: the
# listening nc exited). Median of ROUNDS, MiB/s, and each against nc.
#
# Env: LANYARD_BIN (default target/release/lanyard), ROUNDS (3), SIZE_MIB (1024),
#      LANYARD_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$HERE/../tests/netns/lib.sh"

NETNS_LOG_TAG=bench/localsend
need_root
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lanyard.sh
. "$HERE/../tests/netns/lanyard.sh"
# shellcheck source-path=SCRIPTDIR source=../tests/netns/localsend_lib.sh
. "$HERE/../tests/netns/localsend_lib.sh"
for c in nc curl python3 localsendd localsendctl openssl; do
    command -v "$c" >/dev/null || die "$c not found"
done
lanyard_release_bin

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
WAIT_S=$PATIENCE
CMD_S=$((PATIENCE + 600))

netns_setup 3
TMP=$NETNS_TMP
RECV=$TMP/fs
mkdir -p "$RECV"
mount -t tmpfs -o size=$((SIZE_MIB * 3 + 512))m lanyard-bench-ls "$RECV" || die "cannot mount a tmpfs"
netns_on_failure() { umount "$RECV" 2>/dev/null || true; }
trap 'umount "$RECV" 2>/dev/null || true' EXIT
log "binary $LANYARD_BIN; $ROUNDS rounds of $SIZE_MIB MiB; receivers and the source on tmpfs; load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

DL1=$RECV/dl1
LS2=$RECV/ls2
LS3=$RECV/ls3
mkdir -p "$DL1" "$LS2" "$LS3"
SRC=$RECV/src.bin
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC"

PORT=7717
serve_start 1 h1 --accept-all --download-dir "$DL1"
expect_event "$TMP/h1.jsonl" "$WAIT_S" event=listening >/dev/null
localsendd_start 3 "$LS3"
LS3_PID=$LS_PID
netns_exec 3 timeout 10 "${LSENV[@]}" localsendctl --socket "$LSSOCK" alias phone3 >/dev/null
localsendd_start 2 "$LS2"
ls_sees() { ctl devices --json | python3 -c 'import json,sys; sys.exit(0 if any(d["alias"]==sys.argv[1] for d in json.load(sys.stdin)) else 1)' "$1"; }
until_ok "$WAIT_S" "phone2 lists host1" ls_sees host1
until_ok "$WAIT_S" "phone2 lists phone3" ls_sees phone3
lanyard_sees_ls() { lny 1 "$CMD_S" peers --json --wait 0 | python3 -c 'import json,sys; sys.exit(0 if any(p.get("localsend") and p["nick"]=="phone2" for p in json.load(sys.stdin)) else 1)'; }
until_ok "$WAIT_S" "lanyard lists phone2" lanyard_sees_ls
ls_idle() { ctl status --json | python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin).get("active") else 1)'; }

now() { date +%s.%N; }
declare -A T=()
record() { T[$1]="${T[$1]:-} $(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$2" "$(now)")"; }
gone() { [ ! -e "$1" ]; }
same_size() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" = $((SIZE_MIB << 20)) ]; }

curl_upload() {
    local body answer
    body=$(python3 -c '
import json, sys
print(json.dumps({"info": {"alias": "curl", "version": "2.1", "deviceModel": None, "deviceType": "headless",
                           "fingerprint": "CURLBENCH", "port": 53317, "protocol": "https", "download": False},
                  "files": {"a": {"id": "a", "fileName": "curl.bin", "size": int(sys.argv[1]),
                                  "fileType": "application/octet-stream"}}}))' $((SIZE_MIB << 20)))
    answer=$(netns_exec 2 curl -sk --http1.1 -X POST -H 'Content-Type: application/json' --data "$body" \
        "https://$(netns_addr 1):53317/api/localsend/v2/prepare-upload")
    local q
    q=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); print("sessionId=%s&fileId=a&token=%s" % (a["sessionId"], a["files"]["a"]))' "$answer") ||
        die "prepare-upload by curl answered: $answer"
    netns_exec 2 timeout "$CMD_S" curl -sSk --http1.1 -X POST -T "$SRC" -H 'Content-Type: application/octet-stream' \
        -o /dev/null -w '%{http_code}' "https://$(netns_addr 1):53317/api/localsend/v2/upload?$q"
}

for round in $(seq 1 "$ROUNDS"); do
    # nc, h2 -> h1.
    t0=$(now)
    netns_spawn 1 "$RECV/nc.bin" "$TMP/nc.err" nc -l -p 9000
    NC_PID=$NETNS_PID
    until_ok "$WAIT_S" "nc listening" sh -c "ip netns exec $(netns_name 1) ss -tln | grep -q ':9000 '"
    t0=$(now)
    netns_exec 2 timeout "$CMD_S" nc -N "$(netns_addr 1)" 9000 <"$SRC" || die "nc send failed"
    wait "$NC_PID" || true
    record nc "$t0"
    same_size "$RECV/nc.bin" || die "nc moved $(stat -c %s "$RECV/nc.bin") bytes"
    rm -f "$RECV/nc.bin"

    # localsendd -> lanyard.
    until_ok "$WAIT_S" "phone2 idle" ls_idle
    t0=$(now)
    ctl send --to host1 --wait --quiet "$SRC" >"$TMP/ls-lanyard.out" 2>&1 || die "localsendd -> lanyard failed: $(cat "$TMP/ls-lanyard.out")"
    record ls-lanyard "$t0"
    until_ok "$WAIT_S" "src.bin at lanyard" same_size "$DL1/src.bin"
    rm -f "$DL1/src.bin"

    # curl -> lanyard.
    t0=$(now)
    code=$(curl_upload) || die "curl's upload failed ($code)"
    [ "$code" = 200 ] || die "curl's upload answered $code"
    record curl-lanyard "$t0"
    until_ok "$WAIT_S" "curl.bin at lanyard" same_size "$DL1/curl.bin"
    rm -f "$DL1/curl.bin"

    # lanyard -> localsendd.
    until_ok "$WAIT_S" "phone2 idle" ls_idle
    t0=$(now)
    lny 1 "$CMD_S" send phone2 -- "$SRC" >"$TMP/lanyard-ls.out" 2>&1 || die "lanyard -> localsendd failed: $(tail -3 "$TMP/lanyard-ls.out")"
    record lanyard-ls "$t0"
    until_ok "$WAIT_S" "src.bin at phone2" same_size "$LS2/src.bin"
    rm -f "$LS2/src.bin"

    # localsendd -> localsendd.
    until_ok "$WAIT_S" "phone2 idle" ls_idle
    t0=$(now)
    ctl send --to phone3 --wait --quiet "$SRC" >"$TMP/ls-ls.out" 2>&1 || die "localsendd -> localsendd failed: $(cat "$TMP/ls-ls.out")"
    record ls-ls "$t0"
    until_ok "$WAIT_S" "src.bin at phone3" same_size "$LS3/src.bin"
    rm -f "$LS3/src.bin"
    log "round $round done"
done

log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$SIZE_MIB" "nc:${T[nc]}" "ls->lanyard:${T[ls-lanyard]}" "curl->lanyard:${T[curl-lanyard]}" \
    "lanyard->ls:${T[lanyard-ls]}" "ls->ls:${T[ls-ls]}" <<'PY'
import statistics, sys
mib = int(sys.argv[1])
rows = []
for arg in sys.argv[2:]:
    name, times = arg.split(":", 1)
    ts = [float(t) for t in times.split()]
    rows.append((name, statistics.median(ts), ts))
nc = rows[0][1]
print(f"{'path':<15} {'median s':>9} {'MiB/s':>8} {'vs nc':>6}   rounds (s)")
for name, med, ts in rows:
    print(f"{name:<15} {med:9.2f} {mib / med:8.0f} {nc / med:6.2f}   " + " ".join(f"{t:.2f}" for t in ts))
PY
netns_stop "$LS_PID" 5 || true
netns_stop "$LS3_PID" 5 || true
netns_stop "${SERVE_PID[1]}" 10 || true
