#!/usr/bin/env bash
# benches/lab.sh - a computer lab of N machines starting lanyard: how long until everyone sees
# everyone, and what the lab costs once it has settled.  Prints figures; never asserts on timing.
# Exits non-zero only when the harness fails (setup, a node that cannot start, packets the lab
# itself dropped: netns_drops).
#
# For every N in SIZES and every start mode in MODES, a fresh lab (tests/netns/lib.sh: N network
# namespaces on one private bridge, mDNS on inside them, identities made beforehand with
# `lanyard id`) runs `lanyard serve --json` on every host:
#   together   all started back to back;
#   staggered  STAGGER_S apart (people arriving, machines booting one after another).
# Measured (the events are the nodes' own serve --json lines, read by tests/netns/lab.py):
#   (a) convergence: first start -> the moment EVERY node lists (peer_up, no peer_down since)
#       every other node; and per node: its own start -> the first moment it lists all others
#       (median, max).  Bounded by CONVERGE_S from the first start; past it the row says how
#       many nodes were complete and a histogram of how many peers each lists.  Also the CPU
#       seconds all nodes used from their start up to that point (or the bound).
#   (b) idle CPU: after convergence (or the bound) and SETTLE_S more, utime+stime of all the
#       lanyard processes (/proc/PID/stat) over IDLE_S, as % of one core, for the lab and the
#       busiest node; with the frames/s all hosts sent onto the bridge in that window, and how
#       busy the whole machine was (/proc/stat) so a noisy neighbour shows.
#   (c) memory: VmRSS and VmHWM (peak) of the nodes, median and largest.
#   (d) per node: established TCP connections (`ss` in its namespace; one control connection
#       per peer is N-1), open fds, threads.
# Every size ends with netns_drops (UdpSndbufErrors, ARP table overflow): a run where the lab
# dropped packets is marked INVALID and makes the exit status 1.
#
# Env: LANYARD_BIN (default target/release/lanyard: build it with `cargo build --release`),
#      SIZES (default "20 50 100"; 2..120), MODES (default "together staggered"),
#      CONVERGE_S (default 90), SETTLE_S (default 180: a node's start-up schedule - a minute of
#      mDNS browsing, announcements until ~100 s, its peers' records timing out two minutes after
#      their last announcement - is over by then, so the window sees a quiet lab; 10 measures
#      the tail of the start), IDLE_S (default 30), STAGGER_S (0.3),
#      LANYARD_KEEP_TMP=1 to keep every run's logs (then their dirs are printed).
# A default run takes about 25 min (six labs, each settling 3 min before the idle window).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$REPO/tests/netns/lib.sh"

NETNS_LOG_TAG=bench/lab
need_root
command -v python3 >/dev/null || die "python3 not found"
command -v ss >/dev/null || die "ss not found (apt-get install iproute2)"

# shellcheck source-path=SCRIPTDIR source=../tests/netns/lanyard.sh
. "$REPO/tests/netns/lanyard.sh"
lanyard_release_bin
LABPY="$REPO/tests/netns/lab.py"

SIZES=${SIZES:-"20 50 100"}
MODES=${MODES:-"together staggered"}
CONVERGE_S=${CONVERGE_S:-90}
SETTLE_S=${SETTLE_S:-180}
IDLE_S=${IDLE_S:-30}
STAGGER_S=${STAGGER_S:-0.3}
PORT=7717
for n in $SIZES; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 2 || n > NETNS_MAX_HOSTS)); then
        die "SIZES: '$n' is not 2..$NETNS_MAX_HOSTS"
    fi
done
for m in $MODES; do
    case $m in together | staggered) ;; *) die "MODES: '$m' is not together or staggered" ;; esac
done

stale=$(find "$REPO/src" -name '*.rs' -newer "$LANYARD_BIN" -print -quit 2>/dev/null || true)
[ -z "$stale" ] || log "WARNING: $LANYARD_BIN is older than $stale: figures are for an older build"

RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/lanyard-bench-lab.XXXXXX")
trap 'rm -rf -- "$RESULTS"' EXIT

# snap FILE PID... : JSON {"ticks": utime+stime of each PID, "all": every process's ticks by
# "pid comm", "cpu": the /proc/stat cpu line, "t": monotonic seconds}.
snap() {
    python3 - "$@" <<'PY'
import json, os, sys, time
out, pids = sys.argv[1], sys.argv[2:]
def ticks(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None, None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[11]) + int(rest[12])  # fields 14, 15: utime, stime
allp = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        comm, t = ticks(d)
        if t is not None:
            allp["%s %s" % (d, comm)] = t
with open("/proc/stat") as f:
    cpu = [int(x) for x in f.readline().split()[1:]]
json.dump({"ticks": {p: ticks(p)[1] for p in pids}, "all": allp, "cpu": cpu, "t": time.monotonic()},
          open(out, "w"))
PY
}

# bridge_frames BR: frames and bytes all hosts sent onto the bridge so far ("PACKETS BYTES").
bridge_frames() {
    ip -n "$1" -j -s link show | python3 -c '
import json, sys
ports = [l for l in json.load(sys.stdin) if l["ifname"].startswith("h")]
print(sum(l["stats64"]["rx"]["packets"] for l in ports), sum(l["stats64"]["rx"]["bytes"] for l in ports))'
}

# snmp_out N: UDP datagrams and TCP segments all N hosts have sent so far ("UDP TCP"), from
# each namespace's /proc/net/snmp.
snmp_out() {
    local i udp=0 tcp=0 u t
    for ((i = 1; i <= $1; i++)); do
        # shellcheck disable=SC2016  # awk, not shell, fields
        read -r u t < <(netns_exec "$i" awk '
            $1 == "Udp:" && !uh { for (k = 2; k <= NF; k++) uc[$k] = k; uh = 1; next }
            $1 == "Udp:" && uh && !ud { u = $uc["OutDatagrams"]; ud = 1 }
            $1 == "Tcp:" && !th { for (k = 2; k <= NF; k++) tc[$k] = k; th = 1; next }
            $1 == "Tcp:" && th && !td { t = $tc["OutSegs"]; td = 1 }
            END { print u + 0, t + 0 }' /proc/net/snmp)
        udp=$((udp + u)) tcp=$((tcp + t))
    done
    echo "$udp $tcp"
}

# probe N: for the 3 hosts that list the fewest others: how many its events list, how many its
# node's table says are online (`peers --json` through the control socket), how many TCP
# connections its namespace has established.  One line each.
probe() {
    local n=$1 k c online
    python3 "$LABPY" lonely "$NETNS_TMP" "$n" 3 | while read -r k c; do
        online=$(lny "$k" 30 peers --json 2>/dev/null |
            python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin) if p.get("online") is True))' 2>/dev/null) ||
            online="?"
        echo "h$k: events list $c, its table has $online online, $(sed -n "${k}p" "$NETNS_TMP/tcp") TCP established"
    done
}

# run_case N MODE: one lab, start to teardown; appends one JSON line to $RESULTS/rows.jsonl.
# Runs in a subshell (its own netns_setup and teardown trap).
run_case() {
    local n=$1 mode=$2 i t_first now left tcp pids=() frames0 frames1 snmp0 snmp1 wait_rc=0 drops_ok=1
    NETNS_LOG_TAG="bench/lab N=$n $mode"
    netns_setup "$n"
    local tmp=$NETNS_TMP
    netns_on_failure() {
        local k
        echo "---- bench/lab N=$n $mode: harness failure (exit $1); the loneliest hosts ----" >&2
        python3 "$LABPY" lonely "$tmp" "$n" 2 2>/dev/null | while read -r k _; do
            tail -n 5 "$tmp/h$k.jsonl" "$tmp/h$k.err" >&2 2>/dev/null || true
        done
    }
    for ((i = 1; i <= n; i++)); do
        lny "$i" 30 id --json >/dev/null 2>"$tmp/id$i.err" || die "h$i: 'lanyard id' failed: $(tail -n 3 "$tmp/id$i.err")"
    done
    log "identities made; starting $n nodes ($mode)"
    : >"$tmp/starts"
    t_first=$(netns_now_ms)
    for ((i = 1; i <= n; i++)); do
        if [ "$mode" = staggered ] && ((i > 1)); then sleep "$STAGGER_S"; fi
        echo "$i $(netns_now_ms)" >>"$tmp/starts"
        serve_start "$i" 2>>"$tmp/starts.log"
        pids+=("${SERVE_PID[i]}")
    done
    log "all started in $(($(netns_now_ms) - t_first)) ms; waiting for every node to list all $((n - 1)) others (bound ${CONVERGE_S}s from the first start)"
    now=$(netns_now_ms)
    left=$(((t_first + CONVERGE_S * 1000 - now) / 1000))
    ((left > 0)) || left=1
    python3 "$LABPY" wait "$tmp" "$n" "$left" || wait_rc=$?
    ((wait_rc <= 1)) || die "lab.py wait failed ($wait_rc)"
    snap "$tmp/conv.json" "${pids[@]}"

    log "settling ${SETTLE_S}s, then measuring idle CPU for ${IDLE_S}s"
    sleep "$SETTLE_S"
    frames0=$(bridge_frames "${NETNS_P}br")
    snmp0=$(snmp_out "$n")
    snap "$tmp/idle0.json" "${pids[@]}"
    sleep "$IDLE_S"
    snap "$tmp/idle1.json" "${pids[@]}"
    snmp1=$(snmp_out "$n")
    frames1=$(bridge_frames "${NETNS_P}br")

    : >"$tmp/tcp"
    for ((i = 1; i <= n; i++)); do
        tcp=$(netns_exec "$i" ss -Htn state established | wc -l)
        echo "$tcp" >>"$tmp/tcp"
    done
    python3 "$LABPY" report "$tmp" "$n" "$tmp/starts" >"$tmp/report.json"
    : >"$tmp/probe"
    if ((wait_rc != 0)); then
        probe "$n" >"$tmp/probe"
        log "not converged; the loneliest hosts: $(paste -sd ';' "$tmp/probe")"
    fi
    if ! netns_drops; then
        drops_ok=0
        log "INVALID: the lab dropped packets: $NETNS_DROPS_WHY"
    fi
    log "drops: $NETNS_DROPS"

    python3 - "$tmp" "$n" "$mode" "$frames0" "$frames1" "$snmp0" "$snmp1" "$drops_ok" "$NETNS_DROPS" "${pids[@]}" \
        >>"$RESULTS/rows.jsonl" <<'PY'
import json, os, statistics, sys
tmp, n, mode, f0, f1, s0, s1, drops_ok, drops = sys.argv[1:10]
pids = sys.argv[10:]
hz = os.sysconf("SC_CLK_TCK")
load = lambda name: json.load(open(os.path.join(tmp, name)))
rep, conv, i0, i1 = load("report.json"), load("conv.json"), load("idle0.json"), load("idle1.json")
window = i1["t"] - i0["t"]
alive = [p for p in pids if i1["ticks"].get(p) is not None]
per_node = [(i1["ticks"][p] - i0["ticks"][p]) / hz / window * 100 for p in alive if i0["ticks"].get(p) is not None]
cpu0, cpu1 = i0["cpu"], i1["cpu"]
tot = sum(cpu1) - sum(cpu0)
idle = (cpu1[3] + cpu1[4]) - (cpu0[3] + cpu0[4])
others = []
for k, t in i1["all"].items():
    if k in i0["all"] and not k.endswith(" lanyard"):
        others.append(((t - i0["all"][k]) / hz / window * 100, k.split(" ", 1)[1]))
others.sort(reverse=True)
def status(pid, key):
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
def fds(pid):
    try:
        return len(os.listdir("/proc/%s/fd" % pid))
    except OSError:
        return None
def stats(vals, scale=1.0):
    vals = [v / scale for v in vals if v is not None]
    return {"median": statistics.median(vals), "max": max(vals), "min": min(vals)} if vals else None
tcp = [int(l) for l in open(os.path.join(tmp, "tcp")) if l.strip()]
p0, b0 = map(int, f0.split())
p1, b1 = map(int, f1.split())
u0, t0 = map(int, s0.split())
u1, t1 = map(int, s1.split())
row = {
    "n": int(n), "mode": mode, "report": rep,
    "conv_cpu_s": sum(v or 0 for v in conv["ticks"].values()) / hz,
    "idle_window_s": window,
    "idle_lab_pct": sum(per_node), "idle_node_pct": stats(per_node),
    "machine_busy_pct": (tot - idle) / tot * 100 * os.cpu_count() if tot else None,
    "others": [[round(c, 1), name] for c, name in others[:3]],
    "rss_mib": stats([status(p, "VmRSS") for p in alive], 1024),
    "hwm_mib": stats([status(p, "VmHWM") for p in alive], 1024),
    "threads": stats([status(p, "Threads") for p in alive]),
    "fds": stats([fds(p) for p in alive]),
    "tcp": stats(tcp),
    "exited": len(pids) - len(alive),
    "frames_per_s": (p1 - p0) / window, "kbytes_per_s": (b1 - b0) / window / 1000,
    "udp_per_s": (u1 - u0) / window, "tcp_per_s": (t1 - t0) / window,
    "probe": [l.strip() for l in open(os.path.join(tmp, "probe")) if l.strip()],
    "drops_ok": drops_ok == "1", "drops": drops,
}
print(json.dumps(row))
PY
    log "converged: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["converged"], r["converge_ms"], "ms;", r["complete"], "complete; histogram", r["histogram"])' "$tmp/report.json")"
    [ "${LANYARD_KEEP_TMP:-0}" != 1 ] || echo "$n $mode $tmp" >>"$RESULTS/kept"
    local t0
    t0=$(netns_now_ms)
    netns_teardown
    log "teardown of $n hosts took $(($(netns_now_ms) - t0)) ms"
    ((drops_ok)) || exit 3
}

started=$(date '+%Y-%m-%d %H:%M:%S')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_bench=$(netns_now_ms)
log "binary $LANYARD_BIN; sizes: $SIZES; modes: $MODES; CONVERGE_S=$CONVERGE_S SETTLE_S=$SETTLE_S IDLE_S=$IDLE_S STAGGER_S=$STAGGER_S"
failed=()
for n in $SIZES; do
    for mode in $MODES; do
        rc=0
        (run_case "$n" "$mode") || rc=$?
        if ((rc == 3)); then
            failed+=("N=$n/$mode: the lab dropped packets (row marked INVALID)")
        elif ((rc != 0)); then
            failed+=("N=$n/$mode: harness failure (exit $rc)")
        fi
    done
done

echo
echo "== lanyard lab: N machines start lanyard serve --json (mDNS on) =="
python3 - "$RESULTS/rows.jsonl" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
def s(ms):
    return "-" if ms is None else "%.1f" % (ms / 1000)
def mm(st, fmt="%.0f"):
    return "-" if not st else (fmt % st["median"]) + "/" + (fmt % st["max"])
head = ("N", "mode", "all see all", "node s", "conv CPU s", "idle %core", "node %core",
        "RSS MiB", "HWM MiB", "TCP/node", "fds", "thr", "frames/s", "kB/s", "UDP/s", "TCPseg/s", "drops")
out = [head]
for r in rows:
    rep = r["report"]
    if rep["converge_ms"] is not None and rep["converged"]:
        conv = "%s s" % s(rep["converge_ms"])
    elif rep["converge_ms"] is not None:
        conv = "%s s, then lost" % s(rep["converge_ms"])
    else:
        conv = "no: %d/%d" % (rep["complete"], r["n"])
    tcp = r["tcp"]
    out.append((str(r["n"]), r["mode"], conv,
                "%s/%s" % (s(rep["node_median_ms"]), s(rep["node_max_ms"])),
                "%.1f" % r["conv_cpu_s"], "%.1f" % r["idle_lab_pct"], mm(r["idle_node_pct"], "%.2f"),
                mm(r["rss_mib"], "%.1f"), mm(r["hwm_mib"], "%.1f"),
                "-" if not tcp else "%d/%d/%d" % (tcp["min"], tcp["median"], tcp["max"]),
                mm(r["fds"]), mm(r["threads"]),
                "%.0f" % r["frames_per_s"], "%.1f" % r["kbytes_per_s"],
                "%.0f" % r["udp_per_s"], "%.0f" % r["tcp_per_s"],
                "ok" if r["drops_ok"] else "INVALID"))
w = [max(len(row[k]) for row in out) for k in range(len(head))]
for row in out:
    print("  ".join(c.rjust(w[k]) if k not in (1, 2) else c.ljust(w[k]) for k, c in enumerate(row)))
print()
for r in rows:
    rep = r["report"]
    extra = []
    if not rep["converged"]:
        extra.append("at the end %d/%d nodes complete; nodes by how many peers they list: %s"
                     % (rep["complete"], r["n"], rep["histogram"]))
    if rep["unknown_ids"]:
        extra.append("no listening line from hosts %s" % rep["unknown_ids"])
    if r["exited"]:
        extra.append("%d node(s) EXITED" % r["exited"])
    if r["probe"]:
        extra.append("loneliest: " + "; ".join(r["probe"]))
    print("N=%d %s: starts spread over %s s; peer_up %d, peer_down %d, warning %d, lagged %d lines; "
          "discovered(distinct) histogram %s; machine busy %.0f%% of one core in the idle window "
          "(top others: %s); %s%s"
          % (r["n"], r["mode"], s(rep["start_span_ms"]), rep["ups"], rep["downs"], rep["warnings"],
             rep["lagged"], rep["discovered_histogram"], r["machine_busy_pct"] or 0,
             ", ".join("%s %.1f%%" % (name, c) for c, name in r["others"]) or "-",
             r["drops"], "".join("; " + e for e in extra)))
print("""
columns: all see all = first start -> every node lists every other (else: complete nodes / N at
the bound); node s = each node's own start -> it lists all others, median/max; conv CPU s = CPU
seconds of all nodes from start to convergence (or the bound); idle %core = all nodes together
in the idle window, % of one core; node %core, RSS, HWM (peak RSS), fds, thr(eads) = median/max
per node; TCP/node = established TCP connections per node, min/median/max (N-1 = one per peer);
frames/s, kB/s = what all hosts sent onto the bridge in the idle window, UDP/s (mDNS) and
TCPseg/s (control connections: a ping every 2 s each way, and ACKs) of it by protocol.""")
PY
if [ -e "$RESULTS/kept" ]; then
    echo "logs kept (LANYARD_KEEP_TMP=1):"
    sed 's/^/  /' "$RESULTS/kept"
fi
echo
echo "conditions: $started, $(($(netns_now_ms) - t_bench)) ms in all; binary $LANYARD_BIN" \
    "($(stat -c '%y' "$LANYARD_BIN" | cut -d. -f1), $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
echo "  sizes $SIZES; modes $MODES (stagger ${STAGGER_S}s); one round each; CONVERGE_S=$CONVERGE_S SETTLE_S=$SETTLE_S IDLE_S=$IDLE_S"
echo "  machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r);" \
    "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((${#failed[@]})); then
    printf 'harness failures:\n' >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
