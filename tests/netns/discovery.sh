#!/usr/bin/env bash
# tests/netns/discovery.sh - multi-host mDNS discovery test for lanyard.
#
# Three "lab machines" (network namespaces on a private bridge, see lib.sh),
# each running `lanyard serve --json` with mDNS ON (safe: the multicast never
# leaves our namespaces).  Every host must then list exactly the two other
# hosts, online, with the ids that `lanyard id --json` prints for them.
#
# Contract used (lanyard CLI):
#   lanyard id --json --data-dir D      -> {"id":..., "fingerprint":..., "nick":...}
#   lanyard serve --json --nick N --data-dir D --port 7717
#                                       -> JSON lines, each {"event":..., ...},
#                                          e.g. {"event":"peer_up","id":..,"nick":..,
#                                                "addr":"10.99.0.12:7717","ts_ms":..}
#   lanyard peers --wait 3 --json --data-dir D   (via the node's control socket)
#                                       -> [{"id":..,"nick":..,"online":true,"addr":..}, ...]
#
# Env: LANYARD_BIN (default: target/debug/lanyard under the repo root),
#      LANYARD_REQUIRE_NETNS=1 (fail instead of skip without root/netns),
#      LANYARD_KEEP_TMP=1 (keep the scratch dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

N=3
PORT=7717
TOTAL_S=$PATIENCE # guard on the peers check, retries included (a passing run needs seconds)

netns_setup "$N"
TMP=$NETNS_TMP
log "lanyard binary: $LANYARD_BIN"

# On any failure (also unexpected ones under set -e): show what the nodes said.
netns_on_failure() {
    local i
    echo "---- discovery: FAILED (exit $1); diagnostics ----" >&2
    for ((i = 1; i <= N; i++)); do
        if [ -n "${SERVE_PID[i]:-}" ]; then
            if netns__gone "${SERVE_PID[i]}"; then
                echo "== h$i: serve (pid ${SERVE_PID[i]}) has EXITED" >&2
            else
                echo "== h$i: serve (pid ${SERVE_PID[i]}) still running" >&2
            fi
        fi
        echo "== h$i: tail $TMP/h$i.jsonl" >&2
        tail -n 40 "$TMP/h$i.jsonl" >&2 2>/dev/null || echo "(none)" >&2
        echo "== h$i: tail $TMP/h$i.err" >&2
        tail -n 40 "$TMP/h$i.err" >&2 2>/dev/null || echo "(none)" >&2
        if [ -s "$TMP/id$i.err" ]; then
            echo "== h$i: 'id' stderr" >&2
            tail -n 20 "$TMP/id$i.err" >&2
        fi
        if [ -e "$TMP/peers$i.out" ]; then
            echo "== h$i: last 'peers' stdout / stderr / verdict" >&2
            cat "$TMP/peers$i.out" "$TMP/peers$i.err" "$TMP/peers$i.why" >&2 2>/dev/null || true
        fi
    done
    echo "---- end of diagnostics ----" >&2
}

# id_of I : echo host I's id from `id --json`, checking the object's keys.
id_of() {
    local i=$1 out
    out=$(lny "$i" "$PATIENCE" id --json --data-dir "$TMP/h$i" 2>>"$TMP/id$i.err") || return 1
    python3 -c '
import json, sys
try:
    o = json.loads(sys.argv[1])
except ValueError as e:
    sys.exit("id --json: not JSON (%s): %r" % (e, sys.argv[1]))
if not isinstance(o, dict):
    sys.exit("id --json: not an object: %r" % (o,))
missing = [k for k in ("id", "fingerprint", "nick") if k not in o]
if missing or not isinstance(o["id"], str) or not o["id"]:
    sys.exit("id --json: missing/empty keys %s: %r" % (missing, o))
print(o["id"])' "$out" 2>>"$TMP/id$i.err"
}

serve_alive() {
    local i
    for ((i = 1; i <= N; i++)); do
        if netns__gone "${SERVE_PID[i]}"; then
            die "h$i: 'lanyard serve' exited prematurely"
        fi
    done
}

# check_peers I : host I's `peers` output must list exactly the other hosts.
check_peers() {
    local i=$1 j expect=()
    for ((j = 1; j <= N; j++)); do
        if ((j != i)); then
            expect+=("${ID[j]}" "host$j" "$(netns_addr "$j")")
        fi
    done
    lny "$i" "$PATIENCE" peers --wait 3 --json --data-dir "$TMP/h$i" >"$TMP/peers$i.out" 2>"$TMP/peers$i.err" || {
        echo "h$i: 'lanyard peers' exited with $?" >"$TMP/peers$i.why"
        return 1
    }
    python3 - "$TMP/peers$i.out" "$PORT" "${ID[i]}" "${expect[@]}" >"$TMP/peers$i.why" 2>&1 <<'PY'
import json, sys
path, port, self_id, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
want = {rest[k]: (rest[k + 1], rest[k + 2]) for k in range(0, len(rest), 3)}  # id -> (nick, ip)
text = open(path).read()
try:
    peers = json.loads(text)
except ValueError as e:
    sys.exit("not JSON (%s): %r" % (e, text[:500]))
if not isinstance(peers, list):
    sys.exit("not a JSON array: %r" % (peers,))
errs = []
for p in peers:
    if not isinstance(p, dict) or any(k not in p for k in ("id", "nick", "online", "addr")):
        errs.append("entry lacks id/nick/online/addr: %r" % (p,))
if errs:
    sys.exit("; ".join(errs))
ids = [p["id"] for p in peers]
if self_id in ids:
    errs.append("lists itself (%s)" % self_id)
if sorted(ids) != sorted(want):
    errs.append("ids %s, want exactly %s" % (sorted(ids), sorted(want)))
for p in peers:
    if p["id"] not in want:
        continue
    nick, ip = want[p["id"]]
    if p["nick"] != nick:
        errs.append("%s: nick %r, want %r" % (p["id"], p["nick"], nick))
    if p["online"] is not True:
        errs.append("%s (%s): online=%r" % (nick, p["id"], p["online"]))
    addr = str(p["addr"])
    host, sep, prt = addr.rpartition(":") if addr.count(":") == 1 else (addr, "", "")
    if host != ip or (sep and prt != port):
        errs.append("%s: addr %r, want %s:%s" % (nick, addr, ip, port))
if errs:
    sys.exit("; ".join(errs))
print("ok: " + ", ".join("%s=%s@%s" % (p["nick"], p["id"], p["addr"]) for p in peers))
PY
}

# check_events I : every line of hI.jsonl is an object with "event", and
# there is a peer_up (with an integer ts_ms) for each other host.
check_events() {
    local i=$1 j ts
    python3 - "$TMP/h$i.jsonl" <<'PY' || die "h$i: serve --json output breaks the JSON-lines contract"
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    if not line.strip():
        continue
    try:
        o = json.loads(line)
    except ValueError as e:
        sys.exit("line %d not JSON (%s): %r" % (n, e, line))
    if not isinstance(o, dict) or not isinstance(o.get("event"), str):
        sys.exit("line %d has no \"event\": %r" % (n, line))
PY
    for ((j = 1; j <= N; j++)); do
        ((j != i)) || continue
        ts=$(jsonl_wait "$TMP/h$i.jsonl" peer_up "${ID[j]}" "$PATIENCE") ||
            die "h$i: no peer_up event for host$j (${ID[j]}) in serve --json output"
        [[ $ts =~ ^[0-9]+$ ]] || die "h$i: peer_up for host$j has no integer ts_ms ('$ts')"
    done
}

declare -a ID SERVE_PID

# 1. Identities first (so 'serve' and 'id' never race to create one).
for ((i = 1; i <= N; i++)); do
    ID[i]=$(id_of "$i") || ID[i]=""
done

# 2. Start the nodes.
for ((i = 1; i <= N; i++)); do
    serve_start "$i"
done
sleep 0.3
serve_alive

# An implementation may only create the identity in 'serve': retry 'id' now.
for ((i = 1; i <= N; i++)); do
    if [ -z "${ID[i]}" ]; then
        wait_for "$PATIENCE" id_of "$i" >/dev/null || die "h$i: 'lanyard id --json' failed: $(tail -n 5 "$TMP/id$i.err")"
        ID[i]=$(id_of "$i")
    fi
    log "h$i: id ${ID[i]}"
done
[ "$(printf '%s\n' "${ID[@]}" | sort -u | wc -l)" -eq "$N" ] || die "hosts do not have distinct ids: ${ID[*]}"

# 3. Every host must see exactly the others; retry for up to ~TOTAL_S s.
declare -A PASSED
deadline=$(($(netns_now_ms) + TOTAL_S * 1000))
attempt=0
while :; do
    attempt=$((attempt + 1))
    serve_alive
    pending=0
    for ((i = 1; i <= N; i++)); do
        [ -z "${PASSED[$i]:-}" ] || continue
        if check_peers "$i"; then
            PASSED[$i]=1
            log "h$i: $(cat "$TMP/peers$i.why")"
        else
            pending=$((pending + 1))
            log "h$i: attempt $attempt: $(tail -n 1 "$TMP/peers$i.why")"
        fi
    done
    ((pending)) || break
    if (($(netns_now_ms) >= deadline)); then
        die "peers check still failing on $pending host(s) after ${TOTAL_S}s"
    fi
    sleep 0.5
done

# 4. The ids are stable while the nodes run, and the event stream keeps
#    its contract.
for ((i = 1; i <= N; i++)); do
    now=$(id_of "$i") || die "h$i: 'lanyard id --json' failed while serving"
    [ "$now" = "${ID[i]}" ] || die "h$i: id changed from ${ID[i]} to $now"
    check_events "$i"
done
log "ok: ids stable, serve --json events well-formed with peer_up for every peer"
netns_check_drops

# 5. Graceful stop (teardown would SIGKILL stragglers anyway).
for ((i = 1; i <= N; i++)); do
    rc=0
    netns_stop "${SERVE_PID[i]}" 5 || rc=$?
    log "h$i: serve stopped (exit status $rc)"
done
netns_teardown

echo "discovery: ok"
