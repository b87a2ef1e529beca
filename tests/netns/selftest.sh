#!/usr/bin/env bash
# tests/netns/selftest.sh - proves the namespace plumbing works, no lanyard
# needed: 3 hosts, full-mesh ping, an mDNS-style multicast datagram
# (224.0.0.251:5353, TTL 1) from h1 received in h2 and h3, the address plan,
# the drop check (netns_check_drops), and a clean teardown.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root
command -v python3 >/dev/null || die "python3 not found"
command -v ping >/dev/null || die "ping not found (apt-get install iputils-ping)"

N=3
GROUP=224.0.0.251
PORT=5353
root_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')

netns_setup "$N"
P=$NETNS_P
TMP=$NETNS_TMP

# 1. Nothing was created in the root namespace.
root_links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[ "$root_links_before" = "$root_links_after" ] ||
    die "root namespace links changed: '$root_links_before' -> '$root_links_after'"

# 2. Address plan: only 127.0.0.1 and our 10.99.0.x; no IPv6 at all; no
#    default route.
for ((i = 1; i <= N; i++)); do
    addrs=$(ip -n "${P}h$i" -o addr show | awk '{print $4}' | sort | tr '\n' ' ')
    [ "$addrs" = "10.99.0.$((10 + i))/24 127.0.0.1/8 " ] ||
        die "unexpected addresses in h$i: $addrs"
    ! ip -n "${P}h$i" route show default | grep -q . || die "h$i has a default route"
done
br_addrs=$(ip -n "${P}br" -o addr show | awk '{print $2" "$4}' | grep -v '^lo ' || true)
[ -z "$br_addrs" ] || die "bridge namespace has addresses: $br_addrs"
snoop=$(ip netns exec "${P}br" cat /sys/class/net/br0/bridge/multicast_snooping)
[ "$snoop" = 0 ] || die "br0 multicast_snooping is $snoop"
log "ok: address plan, root namespace untouched, mcast_snooping 0"

# 3. Unicast: every host pings every other host.
for ((i = 1; i <= N; i++)); do
    for ((j = 1; j <= N; j++)); do
        ((i != j)) || continue
        netns_exec "$i" ping -n -q -c 1 -W 2 "$(netns_addr "$j")" >/dev/null ||
            die "ping h$i -> h$j ($(netns_addr "$j")) failed"
    done
done
log "ok: ping full mesh ($N hosts)"

# 4. Multicast: h1 sends to 224.0.0.251:5353, h2..hN must receive it.
LISTENER=$(
    cat <<'PY'
import socket, struct, sys
ifaddr, group, port, token, ready, expect_src = sys.argv[1:7]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(port)))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(group) + socket.inet_aton(ifaddr))
s.settimeout(60.0)
open(ready, "w").close()
try:
    while True:
        data, src = s.recvfrom(2048)
        if data == token.encode():
            if src[0] != expect_src:
                print("token from unexpected source %s" % (src,), file=sys.stderr)
                sys.exit(2)
            print("received %r from %s:%d" % (data.decode(), src[0], src[1]))
            sys.exit(0)
except socket.timeout:
    print("timeout: nothing received on %s:%s via %s" % (group, port, ifaddr), file=sys.stderr)
    sys.exit(1)
PY
)
SENDER=$(
    cat <<'PY'
import socket, sys, time
ifaddr, group, port, token = sys.argv[1:5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.bind((ifaddr, 0))
for _ in range(3):          # a few copies; the listeners stop at the first
    s.sendto(token.encode(), (group, int(port)))
    time.sleep(0.1)
PY
)

token="lanyard-selftest-$$-$RANDOM"
declare -A lpid
for ((i = 2; i <= N; i++)); do
    netns_spawn "$i" "$TMP/l$i.out" "$TMP/l$i.err" \
        python3 -c "$LISTENER" "$(netns_addr "$i")" "$GROUP" "$PORT" "$token" "$TMP/l$i.ready" "$(netns_addr 1)"
    lpid[$i]=$NETNS_PID
done
for ((i = 2; i <= N; i++)); do
    wait_for "$PATIENCE" test -e "$TMP/l$i.ready" || die "listener in h$i did not start: $(cat "$TMP/l$i.err")"
done
netns_exec 1 python3 -c "$SENDER" "$(netns_addr 1)" "$GROUP" "$PORT" "$token" ||
    die "multicast send from h1 failed"
for ((i = 2; i <= N; i++)); do
    if wait "${lpid[$i]}"; then
        log "ok: h$i $(cat "$TMP/l$i.out")"
    else
        die "multicast not received in h$i: $(cat "$TMP/l$i.err")"
    fi
done
log "ok: multicast $GROUP:$PORT from h1 reached h2..h$N"

# 5. The lab dropped nothing, and the drop check does notice a send the kernel refused (a socket
#    with a tiny send buffer, written to without waiting).
netns_check_drops
netns_exec 1 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
s.setblocking(False)
for _ in range(50):
    try:
        s.sendto(b"x" * 60000, (sys.argv[1], 9))
    except OSError:  # EAGAIN / ENOBUFS: exactly what the kernel counts
        pass
' "$(netns_addr 2)"
if netns_drops; then
    die "netns_drops missed the send buffer errors provoked in h1 ($NETNS_DROPS)"
fi
[[ $NETNS_DROPS_WHY == *"h1:"* ]] || die "netns_drops blamed the wrong host: $NETNS_DROPS_WHY"
log "ok: netns_drops caught the provoked drops: $NETNS_DROPS_WHY"

# 6. Teardown leaves nothing behind.
netns_teardown
left=$(ip netns list | awk '{print $1}' | grep -E "^${P}(br|h[0-9]+)\$" || true)
[ -z "$left" ] || die "namespaces left after teardown: $left"
[ ! -e "$TMP" ] || die "scratch dir $TMP left after teardown"
log "ok: teardown removed every ${P} namespace"

echo "netns selftest: ok"
