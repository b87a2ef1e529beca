# shellcheck shell=bash
# tests/netns/lib.sh - multi-host test plumbing for lanyard, built from Linux
# network namespaces.  Source it from a test script:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     need_root
#     netns_setup 3
#     netns_exec 1 ping -c1 "$(netns_addr 2)"
#
# Topology made by `netns_setup N` (P = unique run prefix, e.g. "lny12345"):
#
#     ${P}br   : bridge br0 (mcast_snooping 0), ports h1..hN, no address
#     ${P}hI   : eth0 = 10.99.0.(10+I)/24 (veth, peer "hI" in ${P}br on br0),
#                lo up, route 224.0.0.0/4 dev eth0, no default route
#
# Isolation guarantees (the hard rule of this harness):
#   * every link is created directly inside a namespace made by this run
#     (`ip -n NS link add ... peer ... netns BR`), nothing in the root
#     namespace;
#   * the bridge has no uplink, so no frame can leave the bubble;
#   * the only addresses are 127.0.0.1 on lo and 10.99.0.0/24 on eth0:
#     IPv6 is disabled inside our namespaces (no fe80:: link-local, no
#     MLD/RS chatter).  Set NETNS_IPV6=1 to keep (link-local, still
#     contained) IPv6 if a test ever needs it.
#
# Functions:
#   need_root                 "SKIP <script>: why" (exit 0) without root / ip
#                             netns, or FAIL (exit 1) when LANYARD_REQUIRE_NETNS=1
#   netns_setup N             build the topology, install the teardown trap,
#                             set NETNS_P, NETNS_N, NETNS_TMP (scratch dir)
#   netns_exec I cmd...       run cmd in host I
#   netns_spawn I OUT ERR cmd...
#                             start cmd in host I in the background, stdout
#                             to OUT, stderr to ERR; its pid (the command's
#                             own pid, ip execs into it) goes to NETNS_PID
#   netns_name I              echo the namespace name of host I
#   netns_addr I              echo 10.99.0.(10+I)
#   netns_pids I              echo pids running in host I
#   netns_stop PID [TIMEOUT]  SIGTERM, wait up to TIMEOUT s (default 5),
#                             then SIGKILL; returns the pid's exit status
#   netns_teardown [RC]       kill everything in our namespaces, delete them,
#                             remove NETNS_TMP (kept if LANYARD_KEEP_TMP=1);
#                             idempotent.  If the run is failing (RC != 0)
#                             and the test defined `netns_on_failure`, that
#                             is called first (e.g. to dump logs).
#   netns_list_ours           echo the names of our namespaces still present
#   wait_for TIMEOUT cmd...   poll cmd every 0.1 s; 1 on timeout
#   PATIENCE                  seconds (default 120): the bound scripts give anything they
#                             wait for, only a guard against a hang
#   jsonl_wait FILE EVENT ID TIMEOUT
#                             wait until FILE (JSON lines) has an object with
#                             "event"==EVENT and "id"==ID; echo its "ts_ms"
#   log msg...                timestamped message on stderr
#   die msg...                log "FAIL: msg" and exit 1

NETNS_P=""
NETNS_N=0
NETNS_TMP=""
# shellcheck disable=SC2034  # used by the scripts that source this file
NETNS_PID=""
NETNS_NAMES=()
NETNS_TEARING=0
NETNS_SUBNET="10.99.0"
# Seconds: the bound on anything a script waits for. Only a guard against a hang, so generous
# (a loaded machine must never reach it); a passing run never waits for it.
PATIENCE=${PATIENCE:-120}

log() {
    printf '%s [%s] %s\n' "$(date '+%H:%M:%S.%3N')" "${NETNS_LOG_TAG:-${0##*/}}" "$*" >&2
}

die() {
    log "FAIL: $*"
    exit 1
}

# Milliseconds since the epoch (same clock as `date +%s%3N`).
netns_now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME//[!0-9]/}
        echo $((t / 1000))
    else
        date +%s%3N
    fi
}

# wait_for TIMEOUT_S cmd... : run cmd every 0.1 s until it succeeds (0) or
# TIMEOUT_S (may be fractional, e.g. 2.5) has passed (1).  cmd runs at least
# once.
wait_for() {
    local t=${1:?wait_for: TIMEOUT_S missing} ms
    shift
    if [[ $t == *.* ]]; then
        local ip=${t%%.*} fp=${t#*.}000
        ms=$((10#${ip:-0} * 1000 + 10#${fp:0:3}))
    else
        ms=$((10#$t * 1000))
    fi
    local deadline=$(($(netns_now_ms) + ms))
    while :; do
        if "$@"; then
            return 0
        fi
        if (($(netns_now_ms) >= deadline)); then
            return 1
        fi
        sleep 0.1
    done
}

# need_root: make sure we can build namespaces; otherwise SKIP (exit 0), or
# FAIL (exit 1) when LANYARD_REQUIRE_NETNS=1 (CI).
need_root() {
    local why="" probe="lnyprobe$$"
    if [ "$(id -u)" -ne 0 ]; then
        why="not running as root"
    elif ! command -v ip >/dev/null 2>&1; then
        why="'ip' (iproute2) not found"
    elif ! ip netns list >/dev/null 2>&1; then
        why="'ip netns' not available"
    elif ! ip netns add "$probe" >/dev/null 2>&1; then
        why="cannot create a network namespace (missing CAP_SYS_ADMIN?)"
    else
        if ! ip -n "$probe" link add lnyprobebr type bridge >/dev/null 2>&1; then
            why="cannot create a bridge inside a namespace (bridge module?)"
        elif ! ip -n "$probe" link add lnyprobea type veth peer name lnyprobeb >/dev/null 2>&1; then
            why="cannot create a veth pair inside a namespace (veth module?)"
        fi
        ip netns del "$probe" >/dev/null 2>&1 || true
    fi
    if [ -n "$why" ]; then
        if [ "${LANYARD_REQUIRE_NETNS:-0}" = 1 ]; then
            echo "FAIL ${0##*/}: needs root and ip netns: $why (LANYARD_REQUIRE_NETNS=1)" >&2
            exit 1
        fi
        echo "SKIP ${0##*/}: needs root and ip netns: $why (not run, not passed)"
        exit 0
    fi
}

netns_name() {
    local i=${1:?host index missing}
    if ! [[ $i =~ ^[0-9]+$ ]] || ((i < 1 || i > NETNS_N)); then
        die "no such host: '$i' (have 1..$NETNS_N)"
    fi
    echo "${NETNS_P}h$i"
}

netns_addr() {
    local i=${1:?host index missing}
    echo "$NETNS_SUBNET.$((10 + i))"
}

netns_exec() {
    local ns
    ns=$(netns_name "${1:?host index missing}") || exit 1
    shift
    ip netns exec "$ns" "$@"
}

netns_spawn() {
    local ns out=${2:?stdout file missing} err=${3:?stderr file missing}
    ns=$(netns_name "${1:?host index missing}") || exit 1
    shift 3
    # A plain simple command in the background: bash forks, ip setns()es
    # and execs cmd, so $! is cmd's own pid.
    ip netns exec "$ns" "$@" >"$out" 2>"$err" </dev/null &
    # shellcheck disable=SC2034
    NETNS_PID=$!
}

netns_pids() {
    local ns
    ns=$(netns_name "${1:?host index missing}") || exit 1
    ip netns pids "$ns" 2>/dev/null || true
}

# netns_stop PID [TIMEOUT_S]: SIGTERM, wait, SIGKILL.  Returns the exit
# status of PID (must be a child of this shell).
netns_stop() {
    local pid=${1:?pid missing} t=${2:-5} rc=0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$t" netns__gone "$pid"; then
        log "pid $pid ignored SIGTERM for ${t}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# true when pid is gone or a zombie
netns__gone() {
    local st
    [ -e "/proc/$1" ] || return 0
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$st" = Z ] || [ -z "$st" ]
}

# Names of our namespaces that still exist (exact names, not a prefix match:
# lny12 must not match lny123h1).
netns_list_ours() {
    [ -n "$NETNS_P" ] || return 0
    ip netns list 2>/dev/null | awk '{print $1}' |
        grep -E "^${NETNS_P}(br|h[0-9]+)\$" || true
}

netns__all_pids() {
    local ns
    for ns in "${NETNS_NAMES[@]}"; do
        ip netns pids "$ns" 2>/dev/null || true
    done
}

netns__add() {
    ip netns add "$1" || die "ip netns add $1 failed"
    NETNS_NAMES+=("$1") # registered at once: teardown covers partial setups
    ip -n "$1" link set lo up || die "lo up in $1 failed"
    if [ "${NETNS_IPV6:-0}" != 1 ] && [ -d /proc/sys/net/ipv6 ]; then
        # /proc/sys/net is per network namespace; "default" first so that
        # links created afterwards inherit it.
        ip netns exec "$1" sh -c '
            echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 &&
            echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6' ||
            die "disabling IPv6 in $1 failed"
    fi
}

# netns_setup N
netns_setup() {
    local n=${1:?netns_setup: number of hosts missing} i ns br
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 99)); then
        die "netns_setup: N must be 1..99, got '$n'"
    fi
    [ -z "$NETNS_P" ] || die "netns_setup: already set up ($NETNS_P)"

    # Namespace names are "${P}br" / "${P}hNN": lny + pid (<= 7 digits) +
    # hNN <= 13 chars.  The interfaces themselves are eth0, br0 and hI.
    NETNS_P="lny$$"
    local tries=0
    while [ -n "$(netns_list_ours)" ]; do # stale leftovers of a reused pid
        ((++tries < 50)) || die "netns_setup: cannot find a free prefix"
        NETNS_P="lny$(((RANDOM * 32768 + RANDOM) % 10000000))"
    done
    NETNS_N=$n

    trap 'netns_teardown' EXIT
    trap 'netns_teardown 130; trap - EXIT; exit 130' INT
    trap 'netns_teardown 143; trap - EXIT; exit 143' TERM

    NETNS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lanyard-netns.XXXXXX") || die "mktemp failed"

    br="${NETNS_P}br"
    log "setup: prefix $NETNS_P, $n hosts, bridge ns $br, scratch $NETNS_TMP"
    netns__add "$br"
    ip -n "$br" link add br0 type bridge mcast_snooping 0 stp_state 0 ||
        die "creating br0 in $br failed"
    ip -n "$br" link set br0 up || die "br0 up failed"

    for ((i = 1; i <= n; i++)); do
        ns="${NETNS_P}h$i"
        netns__add "$ns"
        # Both veth ends are born in namespaces of ours: eth0 in hI, its
        # peer "hI" in the bridge namespace.
        ip -n "$ns" link add eth0 type veth peer name "h$i" netns "$br" ||
            die "veth for $ns failed"
        ip -n "$br" link set "h$i" master br0 || die "enslaving h$i to br0 failed"
        ip -n "$br" link set "h$i" up || die "h$i up failed"
        ip -n "$ns" addr add "$(netns_addr "$i")/24" dev eth0 || die "addr on $ns failed"
        ip -n "$ns" link set eth0 up || die "eth0 up in $ns failed"
        ip -n "$ns" route add 224.0.0.0/4 dev eth0 || die "multicast route in $ns failed"
    done

    # Re-assert (older iproute2 may ignore the option at creation time).
    ip -n "$br" link set br0 type bridge mcast_snooping 0 || die "mcast_snooping 0 failed"

    for ((i = 1; i <= n; i++)); do
        wait_for "$PATIENCE" netns__link_up "${NETNS_P}h$i" eth0 || die "eth0 in ${NETNS_P}h$i not up"
        wait_for "$PATIENCE" netns__link_up "$br" "h$i" || die "port h$i on br0 not up"
    done
    netns__static_neighbours "$n"
    log "setup: done"
}

# All our namespaces share the kernel's one IPv4 neighbour (ARP) table, capped by the root
# namespace's net.ipv4.neigh.default.gc_thresh3 (1024 here). A lab of N hosts needs about N*N
# entries (each host one per peer, plus the mDNS group), so from ~32 hosts on, new entries fail:
# sends are dropped silently (UDP reports success) and discovery stops converging — a limit of
# this one-machine lab, not of a real LAN, where every machine has its own table. Permanent
# entries don't count against the cap, so each host gets one for every other host up front.
netns__static_neighbours() {
    local n=$1 i j ns batch
    local -a mac
    for ((i = 1; i <= n; i++)); do
        mac[i]=$(ip -n "${NETNS_P}h$i" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
        [ -n "${mac[i]}" ] || die "no MAC address on eth0 in ${NETNS_P}h$i"
    done
    for ((i = 1; i <= n; i++)); do
        ns="${NETNS_P}h$i"
        batch=""
        for ((j = 1; j <= n; j++)); do
            ((i == j)) && continue
            batch+="neigh replace $(netns_addr "$j") lladdr ${mac[j]} nud permanent dev eth0"$'\n'
        done
        [ -z "$batch" ] || printf '%s' "$batch" | ip -n "$ns" -batch - || die "static neighbours in $ns failed"
    done
}

netns__link_up() {
    ip -n "$1" -o link show dev "$2" 2>/dev/null | grep -q 'state UP'
}

# netns_teardown [RC]
netns_teardown() {
    local rc=${1:-$?}
    local - # restore shell options on return
    set +e
    ((NETNS_TEARING)) && return "$rc"
    NETNS_TEARING=1

    if ((${#NETNS_NAMES[@]})); then
        if [ "$rc" -ne 0 ] && declare -F netns_on_failure >/dev/null; then
            netns_on_failure "$rc"
        fi
        local pids sig
        for sig in TERM KILL; do
            pids=$(netns__all_pids)
            [ -n "$pids" ] || break
            log "teardown: SIG$sig to ${pids//$'\n'/ }"
            # shellcheck disable=SC2086  # word splitting wanted
            kill -"$sig" $pids 2>/dev/null
            wait_for 3 netns__no_pids
        done
        pids=$(netns__all_pids)
        [ -z "$pids" ] || log "teardown: WARNING: still alive: ${pids//$'\n'/ }"

        local k
        for ((k = ${#NETNS_NAMES[@]} - 1; k >= 0; k--)); do
            ip netns del "${NETNS_NAMES[k]}" 2>/dev/null ||
                log "teardown: WARNING: could not delete ${NETNS_NAMES[k]}"
        done
        local left
        left=$(netns_list_ours)
        if [ -n "$left" ]; then
            log "teardown: WARNING: namespaces left: ${left//$'\n'/ }"
        else
            log "teardown: removed ${#NETNS_NAMES[@]} namespaces ($NETNS_P*)"
        fi
        NETNS_NAMES=()
    fi

    if [ -n "$NETNS_TMP" ] && [ -d "$NETNS_TMP" ]; then
        if [ "${LANYARD_KEEP_TMP:-0}" = 1 ]; then
            log "teardown: keeping $NETNS_TMP (LANYARD_KEEP_TMP=1)"
        else
            rm -rf -- "$NETNS_TMP"
        fi
    fi
    NETNS_TEARING=0
    return "$rc"
}

netns__no_pids() {
    [ -z "$(netns__all_pids)" ]
}

# jsonl_wait FILE EVENT ID TIMEOUT_S: wait for a JSON line with
# "event"==EVENT and "id"==ID in FILE (which may not exist yet and may grow);
# echo its "ts_ms".  Returns 1 on timeout.  Malformed lines are skipped.
jsonl_wait() {
    python3 - "$@" <<'PY'
import json, sys, time
path, event, ident, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + timeout
pos, buf = 0, b""
while True:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            chunk = f.read()
            pos += len(chunk)
    except FileNotFoundError:
        chunk = b""
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("event") == event and obj.get("id") == ident:
            print(obj.get("ts_ms", ""))
            sys.exit(0)
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.02)
PY
}
