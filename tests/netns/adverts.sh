#!/usr/bin/env bash
# tests/netns/adverts.sh - forged mDNS adverts from an attacker with several addresses.
#
# Four machines on the lab's bridge (see lib.sh), mDNS on inside the namespaces only:
#   h1 ada     the victim, `serve --json`; a trap on its own 127.0.0.1:2222
#   h2 mallory no lanyard: 4 extra addresses, from which `adverts.py send` multicasts forged
#              announcements of lanyard's service type (no key behind any of them)
#   h3 target  13 addresses, a trap (accepts, says "SSH-2.0", closes, logs each connection) on
#              ports 7000-7019, 2222 and 22 of every one of them
#   h4 carol   an honest node, started while the forgery runs
# The forged records: 500 made-up peers spread over h3's 13 addresses and 20 ports, a made-up
# "carol" at h3, one for 127.0.0.1:2222 and one for h3's port 22; repeated every 2 s for
# ATTACK_ROUNDS rounds.
#
# Asserts: ada lists none of the fakes (only carol); `say carol` from ada is delivered (not
# ambiguous); dials to one target address at most 2 a second (at most 6 in any 2 s, the gate's
# spacing being 0.5 s) and in all at most 20 a second plus the burst of 20; no dial
# to ada's loopback, none to a port below 1024; and honest carol is found and reached.
#
# Env: LANYARD_BIN (default target/debug/lanyard), LANYARD_REQUIRE_NETNS=1, LANYARD_KEEP_TMP=1,
#      ATTACK_ROUNDS (default 8).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source-path=SCRIPTDIR source=lanyard.sh
. "$HERE/lanyard.sh"
lanyard_bin

PORT=7717
ROUNDS=${ATTACK_ROUNDS:-8}
FAKES=500
TARGET_PORTS=20

netns_setup 4
TMP=$NETNS_TMP
LOGS=(h1 h4)
netns_on_failure() {
    dump_logs adverts "$1"
    echo "== trap logs" >&2
    tail -n 20 "$TMP/trap-h3.log" "$TMP/trap-h1.log" >&2 2>/dev/null || true
}

ATTACKER_IPS=() TARGET_IPS=("$(netns_addr 3)")
for k in 0 1 2 3; do ATTACKER_IPS+=("$NETNS_SUBNET.$((100 + k))"); done
for k in $(seq 0 11); do TARGET_IPS+=("$NETNS_SUBNET.$((130 + k))"); done
for ip in "${ATTACKER_IPS[@]}"; do netns_exec 2 ip addr add "$ip/24" dev eth0; done
for ip in "${TARGET_IPS[@]:1}"; do netns_exec 3 ip addr add "$ip/24" dev eth0; done
# The extra addresses answer ARP like the first (the static entries cover only the first).
wait_for "$PATIENCE" netns_exec 2 ip -4 -o addr show dev eth0 to "${ATTACKER_IPS[3]}" >/dev/null ||
    die "h2's extra addresses did not come up"

# Traps: h3 on every port the records name (and 22), ada on her loopback's 2222.
listen=""
for p in $(seq 7000 $((7000 + TARGET_PORTS - 1))) 2222 22; do listen+="${listen:+,}0.0.0.0:$p"; done
netns_spawn 3 "$TMP/trap-h3.out" "$TMP/trap-h3.err" python3 "$HERE/adverts.py" trap --listen "$listen" --log "$TMP/trap-h3.log"
netns_spawn 1 "$TMP/trap-h1.out" "$TMP/trap-h1.err" python3 "$HERE/adverts.py" trap --listen 127.0.0.1:2222 --log "$TMP/trap-h1.log"
for h in h3 h1; do
    wait_for "$PATIENCE" grep -q '^listening$' "$TMP/trap-$h.log" 2>/dev/null || die "the trap on $h did not start: $(cat "$TMP/trap-$h.err")"
done

# The forged records.
python3 - "$TMP/records" "$FAKES" "$TARGET_PORTS" "$(netns_addr 3)" "${TARGET_IPS[@]}" <<'PY'
import random, sys
path, fakes, ports, h3, targets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
alphabet = "abcdefghijklmnopqrstuvwxyz234567"
rid = lambda: "".join(random.choice(alphabet) for _ in range(16))
with open(path, "w") as f:
    for k in range(fakes):
        f.write("%s fake%d %d %s\n" % (rid(), k, 7000 + k % ports, targets[k % len(targets)]))
    f.write("%s carol 7000 %s\n" % (rid(), h3))
    f.write("%s loop 2222 127.0.0.1\n" % rid())
    f.write("%s lowport 22 %s\n" % (rid(), h3))
PY

serve_start 1
ID1=$(id_in 1)
log "h1 (ada): $ID1"

sources=$(IFS=,; echo "${ATTACKER_IPS[*]}")
attack_t0=$(python3 -c 'import time; print(time.monotonic())')
netns_spawn 2 "$TMP/send.out" "$TMP/send.err" python3 "$HERE/adverts.py" send --from "$sources" --spec "$TMP/records" --rounds "$ROUNDS" --every 2
SEND_PID=$NETNS_PID
# Dials coming: the forgery reached ada's node.
dialled() { grep -q ' ' "$TMP/trap-h3.log" 2>/dev/null; }
wait_for "$PATIENCE" dialled ||
    die "no forged record was dialled: did the adverts reach h1? $(cat "$TMP/send.err")"
log "the forgery is being dialled; starting honest carol on h4"
host_env 4
netns_spawn 4 "$TMP/h4.jsonl" "$TMP/h4.err" "${HENV[@]}" "$LANYARD_BIN" serve --json --nick carol --port "$PORT"
SERVE_PID[4]=$NETNS_PID
ID4=$(id_in 4)
expect_event "$TMP/h1.jsonl" "$PATIENCE" event=peer_up id="$ID4" >/dev/null || die "ada never saw honest carol come up"
log "ada sees carol ($ID4)"

wait "$SEND_PID" || die "the forger failed: $(cat "$TMP/send.err")"
attack_t1=$(python3 -c 'import time; print(time.monotonic())')
log "forger: $(cat "$TMP/send.out")"

lny 1 "$PATIENCE" say --timeout 60 carol "hello, the real carol" 2>"$TMP/cmd-say.err" ||
    die "ada: 'say carol' failed: $(cat "$TMP/cmd-say.err")"
lny 1 "$PATIENCE" peers --json >"$TMP/peers.json" 2>"$TMP/cmd-peers.err" || die "ada: 'peers' failed"

python3 - "$TMP/peers.json" "$ID4" "$TMP/trap-h3.log" "$TMP/trap-h1.log" "$attack_t0" "$attack_t1" "$(netns_addr 1)" <<'PY'
import collections, json, sys
peers_path, carol, h3_log, h1_log, t0, t1, ada_ip = sys.argv[1:8]
t0, t1 = float(t0), float(t1)
errs = []
peers = json.load(open(peers_path))
ids = sorted(p["id"] for p in peers)
if ids != [carol]:
    errs.append("ada lists %s, want only carol %s: %r" % (ids, carol, [(p["id"], p["nick"]) for p in peers]))

def dials(path):
    out = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 3:
            out.append((float(parts[0]), parts[1], parts[2]))
    return out

# Every node of the lab hears the forgery (carol too): the rates are per dialling node.
h3 = [d for d in dials(h3_log) if d[2] == ada_ip]
others = len(dials(h3_log)) - len(h3)
loop = dials(h1_log)
if loop:
    errs.append("ada dialled her own loopback %d times: %s" % (len(loop), loop[:3]))
low = [d for d in dials(h3_log) if d[1].endswith(":22")]
if low:
    errs.append("dials to a port below 1024: %d (%s)" % (len(low), low[:3]))
per_ip = collections.defaultdict(list)
for t, addr, _ in h3:
    per_ip[addr.rsplit(":", 1)[0]].append(t)
worst_gap, worst_rate = None, 0.0
for ip, times in sorted(per_ip.items()):
    times.sort()
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The gate spaces dials to one address 0.5 s apart; the trap sees them when it accepts, which
    # a loaded machine may delay for one and not the next: the bound is on every 2 s window
    # (5 dials at most at that spacing, one more for the jitter), the gap only printed.
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - 2.0:
            j += 1
        if i - j + 1 > 6:
            errs.append("%s: %d dials within 2 s (gate: one per 0.5 s)" % (ip, i - j + 1))
            break
    if gaps:
        worst_gap = min(gaps) if worst_gap is None else min(worst_gap, min(gaps))
    span = max(times) - min(times)
    if len(times) > 2 * span + 1.5:
        errs.append("%s: %d dials in %.1f s" % (ip, len(times), span))
all_times = sorted(t for t, _, _ in h3)
# Every window of W seconds: at most 20 * W plus the burst of 20.
for w in (1.0, 5.0):
    j = 0
    for i, t in enumerate(all_times):
        while all_times[j] < t - w:
            j += 1
        n = i - j + 1
        worst_rate = max(worst_rate, n / w)
        if n > 20 * w + 20:
            errs.append("%d dials in %.0f s (at %.1f s)" % (n, w, t - t0))
            break
span = (max(all_times) - min(all_times)) if all_times else 0.0
print("ada's dials at the target: %d to %d addresses in %.1f s (%.1f/s); per address at least %s s apart; busiest window %.1f dials/s; to her loopback %d, to ports < 1024 %d (any node); attack %.1f s; other nodes' dials %d"
      % (len(h3), len(per_ip), span, len(h3) / span if span else 0.0,
         "%.2f" % worst_gap if worst_gap is not None else "-", worst_rate, len(loop), len(low), t1 - t0, others))
if len(h3) < 20:
    errs.append("only %d dials reached the target: the attack did not run" % len(h3))
if errs:
    sys.exit("FAIL: " + "; ".join(errs))
PY
log "ok: ada lists only carol, 'say carol' delivered, dials within the rates"
netns_check_drops
netns_stop "${SERVE_PID[4]}" 5 || true
netns_stop "${SERVE_PID[1]}" 5 || true
netns_teardown
echo "adverts: ok"
