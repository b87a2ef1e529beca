# shellcheck shell=bash
# tests/netns/lib.sh - multi-host test plumbing for lanyard, built from Linux
# network namespaces.  Source it from a test script:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     need_root
#     netns_setup 3
#     netns_exec 1 ping -c1 "$(netns_addr 2)"
#
# Topology made by `netns_setup N` (N = 1..120; P = unique run prefix, e.g.
# "lny12345"):
#
#     ${P}br   : bridge br0 (mcast_snooping 0, no STP), ports h1..hN, no address
#     ${P}hI   : eth0 = 10.99.0.(10+I)/24 (veth, peer "hI" in ${P}br on br0),
#                MAC 02:99:00:00:HH:LL (HHLL = I in hex), lo up,
#                route 224.0.0.0/4 dev eth0, no default route, and a permanent
#                neighbour (ARP) entry for every other host (see below)
#
# Names: namespaces "${P}hNNN" <= 14 characters (files, no length limit that
# matters), interfaces eth0 / br0 / hNNN (IFNAMSIZ is 15).  Setup batches its
# ip commands (`ip -batch`, `ip -n NS -batch`): about one process per
# namespace, ~1.1 s for 100 hosts and ~0.05 s to tear down (the
# one-command-per-step version took 6.5 s / 0.6 s).
#
# Isolation guarantees (the hard rule of this harness):
#   * every link is created directly inside a namespace made by this run
#     (`ip -n BR link add hI ... peer name eth0 ... netns HOST`), nothing in
#     the root namespace;
#   * the bridge has no uplink, so no frame can leave the bubble;
#   * the only addresses are 127.0.0.1 on lo and 10.99.0.0/24 on eth0:
#     IPv6 is disabled inside our namespaces (no fe80:: link-local, no
#     MLD/RS chatter).  Set NETNS_IPV6=1 to keep (link-local, still
#     contained) IPv6 if a test ever needs it.
#
# Limits of a lab on one kernel (so they never pass for lanyard bugs):
#   * all namespaces share ONE IPv4 neighbour table, capped machine-wide by the
#     root namespace's net.ipv4.neigh.default.gc_thresh3 (often 1024).  N
#     hosts talking to each other need ~N*N entries, so past ~30 hosts sends
#     would be dropped silently.  Permanent entries are exempt from the cap,
#     hence the static neighbours.  (A host whose eth0 is taken down loses
#     them and falls back to ARP: fine for a handful of hosts.)
#   * netns_check_drops, at the end of a test, fails the run if the kernel
#     dropped any of our sends (UdpSndbufErrors in a host) or the neighbour
#     table overflowed during the run.
#
# Functions:
#   need_root                 "SKIP <script>: why" (exit 0) without root / ip
#                             netns, or FAIL (exit 1) when LANYARD_REQUIRE_NETNS=1
#   netns_setup N             build the topology, install the teardown trap,
#                             set NETNS_P, NETNS_N, NETNS_TMP (scratch dir);
#                             snapshots the neighbour table's overflow count
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
#   netns_drops               0 if the lab dropped nothing, else 1; sets
#                             NETNS_DROPS (summary: UdpSndbufErrors and
#                             UdpRcvbufErrors summed over the hosts, growth of
#                             the ARP table_fulls counter) and NETNS_DROPS_WHY
#                             (findings; RcvbufErrors appear as a note only)
#   netns_check_drops         netns_drops, logged, or die with the findings;
#                             ~4 ms a host
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
# Hosts get 10.99.0.(10+I) in a /24, and 120 keeps a lab on one bridge well inside it.
NETNS_MAX_HOSTS=120
NETNS_RUN_DIR=/var/run/netns # where `ip netns add` puts the namespace files
NETNS_ARP_FULLS0=""          # netns__arp_table_fulls at setup
NETNS_DROPS=""               # set by netns_drops
NETNS_DROPS_WHY=""
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

# Pids of every process in our namespaces: one pass over /proc (a process's
# /proc/PID/ns/net links to "net:[INODE]", the inode of the namespace file
# under /run/netns), not one `ip netns pids` per namespace, which would scan
# /proc N times.
netns__all_pids() {
    ((${#NETNS_NAMES[@]})) || return 0
    local ns inodes
    local -a files=()
    for ns in "${NETNS_NAMES[@]}"; do
        [ -e "$NETNS_RUN_DIR/$ns" ] && files+=("$NETNS_RUN_DIR/$ns")
    done
    ((${#files[@]})) || return 0
    inodes=$(stat -L -c %i "${files[@]}" 2>/dev/null) || true
    [ -n "$inodes" ] || return 0
    # Processes may vanish between the glob and find: their errors are noise.
    find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' 2>/dev/null |
        awk -v inodes="$inodes" '
            BEGIN { n = split(inodes, a, "\n"); for (k = 1; k <= n; k++) want["net:[" a[k] "]"] = 1 }
            ($2 in want) { split($1, p, "/"); print p[3] }' || true
}

# netns__mac I: the MAC address of host I's eth0, fixed at creation so that
# the static neighbour entries need no look-up (locally administered, unicast).
netns__mac() {
    printf '02:99:00:00:%02x:%02x' $(($1 / 256)) $(($1 % 256))
}

# netns__ipv6_off NS: IPv6 off in NS (unless NETNS_IPV6=1).  /proc/sys/net is
# per network namespace; "default" first so that links created or moved in
# afterwards inherit it.  Must run before the veths are made.
netns__ipv6_off() {
    [ "${NETNS_IPV6:-0}" != 1 ] && [ -d /proc/sys/net/ipv6 ] || return 0
    ip netns exec "$1" sh -c '
        echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 &&
        echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6' ||
        die "disabling IPv6 in $1 failed"
}

# netns__arp_table_fulls: the kernel's count of "neighbour table overflow"
# events for IPv4 (the table_fulls column of /proc/net/stat/arp_cache, hex,
# one row per CPU, summed).  The table and the counter are machine-wide.
# Empty when the file is not readable.
netns__arp_table_fulls() {
    local f=/proc/net/stat/arp_cache col=-1 k sum=0
    local -a w
    [ -r "$f" ] || return 0
    {
        read -r -a w || return 0
        for k in "${!w[@]}"; do [ "${w[k]}" = table_fulls ] && col=$k; done
        ((col >= 0)) || return 0
        while read -r -a w; do
            [ -n "${w[col]:-}" ] && sum=$((sum + 16#${w[col]}))
        done
    } <"$f"
    echo "$sum"
}

# netns_setup N
netns_setup() {
    local n=${1:?netns_setup: number of hosts missing} i ns br batch t0
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > NETNS_MAX_HOSTS)); then
        die "netns_setup: N must be 1..$NETNS_MAX_HOSTS, got '$n'"
    fi
    [ -z "$NETNS_P" ] || die "netns_setup: already set up ($NETNS_P)"
    t0=$(netns_now_ms)

    # Namespace names are "${P}br" / "${P}hNNN": lny + pid (<= 7 digits) +
    # hNNN <= 14 chars (a namespace name is a file name: no IFNAMSIZ limit).
    # The interfaces are eth0, br0 and hI (<= 4 chars, IFNAMSIZ is 15).
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
    NETNS_ARP_FULLS0=$(netns__arp_table_fulls)

    br="${NETNS_P}br"
    log "setup: prefix $NETNS_P, $n hosts, bridge ns $br, scratch $NETNS_TMP"
    # Registered before they exist: teardown covers partial setups (and only
    # deletes what netns_list_ours finds).
    NETNS_NAMES=("$br")
    for ((i = 1; i <= n; i++)); do NETNS_NAMES+=("${NETNS_P}h$i"); done

    # 1. All namespaces with one ip process.
    printf 'netns add %s\n' "${NETNS_NAMES[@]}" | ip -batch - || die "creating the namespaces failed"
    for ns in "${NETNS_NAMES[@]}"; do
        netns__ipv6_off "$ns"
    done

    # 2. The bridge and every veth pair, from inside the bridge namespace: both ends are born in
    #    namespaces of ours (eth0 is created straight into hI, with a fixed MAC).
    batch="link set lo up"$'\n'
    batch+="link add br0 type bridge mcast_snooping 0 stp_state 0"$'\n'
    for ((i = 1; i <= n; i++)); do
        batch+="link add h$i type veth peer name eth0 address $(netns__mac "$i") netns ${NETNS_P}h$i"$'\n'
        batch+="link set h$i master br0 up"$'\n'
    done
    # Re-assert (older iproute2 may ignore the option at creation time).
    batch+="link set br0 type bridge mcast_snooping 0"$'\n'
    batch+="link set br0 up"$'\n'
    printf '%s' "$batch" | ip -n "$br" -batch - || die "creating br0 and the veths in $br failed"

    # 3. Each host: one ip process for its address, link, multicast route and the permanent
    #    neighbour entries (after "eth0 up": taking a link down flushes even permanent ones).
    for ((i = 1; i <= n; i++)); do
        ns="${NETNS_P}h$i"
        batch="link set lo up"$'\n'
        batch+="addr add $(netns_addr "$i")/24 dev eth0"$'\n'
        batch+="link set eth0 up"$'\n'
        batch+="route add 224.0.0.0/4 dev eth0"$'\n'
        batch+=$(netns__neighbours_of "$i" "$n")
        printf '%s\n' "$batch" | ip -n "$ns" -batch - || die "configuring $ns failed"
    done

    wait_for "$PATIENCE" netns__ports_up "$br" "$n" || die "not every port on br0 came up: $(netns__ports_down "$br" "$n")"
    for ((i = 1; i <= n; i++)); do
        wait_for "$PATIENCE" netns__link_up "${NETNS_P}h$i" eth0 || die "eth0 in ${NETNS_P}h$i not up"
    done
    log "setup: done in $(($(netns_now_ms) - t0)) ms"
}

# All our namespaces share the kernel's one IPv4 neighbour (ARP) table, capped by the root
# namespace's net.ipv4.neigh.default.gc_thresh3 (1024 here). A lab of N hosts needs about N*N
# entries (each host one per peer, plus the mDNS group), so from ~32 hosts on, new entries fail:
# sends are dropped silently (UDP reports success) and discovery stops converging — a limit of
# this one-machine lab, not of a real LAN, where every machine has its own table. Permanent
# entries don't count against the cap, so each host gets one for every other host up front
# (netns_check_drops verifies afterwards that no send was dropped anyway).
# netns__neighbours_of I N: the ip -batch lines for host I.
netns__neighbours_of() {
    local i=$1 n=$2 j
    for ((j = 1; j <= n; j++)); do
        ((i == j)) && continue
        # netns_addr J and netns__mac J, inlined: no subshell per line (N*N of them).
        printf 'neigh replace %s.%d lladdr 02:99:00:00:%02x:%02x nud permanent dev eth0\n' \
            "$NETNS_SUBNET" $((10 + j)) $((j / 256)) $((j % 256))
    done
}

# netns__ports_down BR N: the ports h1..hN of br0 that are not up (one ip call for all).
netns__ports_down() {
    ip -n "$1" -o link show 2>/dev/null | awk -v n="$2" '
        { name = $2; sub(/@.*/, "", name); sub(/:$/, "", name); if (/state UP/) up[name] = 1 }
        END { for (i = 1; i <= n; i++) if (!(("h" i) in up)) printf "h%d ", i }'
}

netns__ports_up() {
    [ -z "$(netns__ports_down "$1" "$2")" ]
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

        # One ip process for all (-force: go on past one that fails); the hosts
        # first, the bridge last.
        local present
        present=$(netns_list_ours | sort -r)
        if [ -n "$present" ]; then
            # shellcheck disable=SC2086  # one name a word
            printf 'netns del %s\n' $present | ip -force -batch - 2>/dev/null ||
                log "teardown: WARNING: 'ip netns del' failed for some namespace"
        fi
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

# netns_drops: did the lab itself drop anything?  Returns 1 if any host
# namespace has a nonzero UdpSndbufErrors (a datagram the kernel refused to
# send although the sender's call "succeeded") or the kernel's IPv4 neighbour
# table overflowed (table_fulls grew) since netns_setup.  UdpRcvbufErrors (a
# receiver too slow to drain its socket) are reported, not failed on: a busy
# node does that on any LAN.  Prints nothing; sets NETNS_DROPS (a one-line
# summary) and NETNS_DROPS_WHY (the findings, "; "-separated, empty if none).
netns_drops() {
    local i ns out snd rcv bad=0 fulls sum_snd=0 sum_rcv=0 snd_hosts="" rcv_hosts="" gc
    local -a why=()
    for ((i = 1; i <= NETNS_N; i++)); do
        ns="${NETNS_P}h$i"
        # /proc/net is the namespace of whoever reads it; the first Udp: line names the columns.
        # shellcheck disable=SC2016  # awk, not shell, fields
        out=$(ip netns exec "$ns" awk '
            $1 == "Udp:" && !hdr { for (k = 2; k <= NF; k++) col[$k] = k; hdr = 1; next }
            $1 == "Udp:" && hdr { print $col["SndbufErrors"] + 0, $col["RcvbufErrors"] + 0; exit }
        ' /proc/net/snmp 2>&1) || out="error: $out"
        read -r snd rcv <<<"$out" || true
        if ! [[ ${snd:-} =~ ^[0-9]+$ && ${rcv:-} =~ ^[0-9]+$ ]]; then
            why+=("h$i: cannot read UDP counters in $ns: '$out'")
            bad=1
            continue
        fi
        sum_snd=$((sum_snd + snd))
        sum_rcv=$((sum_rcv + rcv))
        ((snd == 0)) || snd_hosts+=" h$i:$snd"
        ((rcv == 0)) || rcv_hosts+=" h$i:$rcv"
    done
    if [ -n "$snd_hosts" ]; then
        why+=("UdpSndbufErrors (datagrams the kernel dropped at send):$snd_hosts")
        bad=1
    fi
    [ -z "$rcv_hosts" ] || why+=("note: UdpRcvbufErrors (a receiving socket's buffer was full, not a harness limit):$rcv_hosts")
    fulls=$(netns__arp_table_fulls)
    if [ -n "$fulls" ] && [ -n "$NETNS_ARP_FULLS0" ]; then
        if ((fulls > NETNS_ARP_FULLS0)); then
            gc=$(cat /proc/sys/net/ipv4/neigh/default/gc_thresh3 2>/dev/null) || gc="?"
            why+=("the IPv4 neighbour table overflowed $((fulls - NETNS_ARP_FULLS0)) time(s) since setup" \
                "(table_fulls in /proc/net/stat/arp_cache; the table is machine-wide, capped by gc_thresh3 = $gc:" \
                "hosts without static entries, or another namespace lab running at the same time)")
            bad=1
        fi
        fulls="+$((fulls - NETNS_ARP_FULLS0))"
    else
        fulls="n/a"
    fi
    NETNS_DROPS="UdpSndbufErrors $sum_snd, UdpRcvbufErrors $sum_rcv, ARP table_fulls $fulls ($NETNS_N hosts)"
    NETNS_DROPS_WHY=""
    local w
    for w in "${why[@]}"; do NETNS_DROPS_WHY+="${NETNS_DROPS_WHY:+; }$w"; done
    return "$bad"
}

# netns_check_drops: netns_drops, or die: a send the lab dropped makes every
# verdict of the run meaningless (it would look like a lanyard bug).
netns_check_drops() {
    if netns_drops; then
        log "drops: none ($NETNS_DROPS)${NETNS_DROPS_WHY:+; $NETNS_DROPS_WHY}"
    else
        die "the lab itself dropped packets, so this run proves nothing about lanyard: $NETNS_DROPS_WHY ($NETNS_DROPS)"
    fi
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
