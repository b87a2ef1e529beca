#!/usr/bin/env python3
"""The two hostile halves of tests/netns/adverts.sh, standard library only.

  adverts.py send --from IP[,IP...] --spec FILE --rounds N --every S
      Forged mDNS announcements for lanyard's service type, multicast from the given source
      addresses in turn (each a socket bound to IP:5353): one unsolicited response per record,
      PTR + SRV + TXT + A, exactly what a node's own announcement carries, with no key behind
      it. FILE has one record a line: "ID NICK PORT IP[,IP...]". Every record is sent each
      round, rounds S seconds apart.

  adverts.py trap --listen IP:PORT[,IP:PORT...] --log FILE
      A host that does not speak lanyard: accepts every connection on the given addresses,
      says it is an ssh server and closes; appends "MONOTONIC_S LOCAL_IP:PORT REMOTE_IP" per
      connection to FILE (flushed at once), so the script counts the dials each target got,
      from whom and when.

Only ever run inside the test's own namespaces (the multicast goes to the lab's bridge).
"""

import argparse
import selectors
import socket
import struct
import sys
import time

SERVICE = "_lanyard._tcp.local"
MDNS = ("224.0.0.251", 5353)


def name(n):
    out = b""
    for label in n.strip(".").split("."):
        raw = label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError("bad DNS label %r" % label)
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def record(owner, rtype, rdata, flush=True, ttl=120):
    rclass = 1 | (0x8000 if flush else 0)
    return name(owner) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def txt(pairs):
    out = b""
    for k, v in pairs:
        item = ("%s=%s" % (k, v)).encode()
        out += bytes([len(item)]) + item
    return out


def announcement(peer_id, nick, port, ips):
    instance = "%s.%s" % (peer_id, SERVICE)
    host = "lanyard-%s.local" % peer_id
    answers = [
        record(SERVICE, 12, name(instance), flush=False),
        record(instance, 33, struct.pack("!HHH", 0, 0, port) + name(host)),
        record(instance, 16, txt([("v", 1), ("id", peer_id), ("nick", nick), ("host", "lab-9")])),
    ]
    answers += [record(host, 1, socket.inet_aton(ip)) for ip in ips]
    header = struct.pack("!HHHHHH", 0, 0x8400, 0, len(answers), 0, 0)
    return header + b"".join(answers)


def send(args):
    records = []
    with open(args.spec) as f:
        for line in f:
            if line.strip():
                peer_id, nick, port, ips = line.split()
                records.append(announcement(peer_id, nick, int(port), ips.split(",")))
    socks = []
    for ip in args.sources.split(","):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
        s.bind((ip, 5353))
        socks.append(s)
    sent = 0
    for r in range(args.rounds):
        started = time.monotonic()
        for k, packet in enumerate(records):
            socks[k % len(socks)].sendto(packet, MDNS)
            sent += 1
            # A burst the lab's bridge and the receivers' sockets take without loss.
            if k % 50 == 49:
                time.sleep(0.01)
        if r + 1 < args.rounds:
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    print("sent %d forged announcements (%d records x %d rounds) from %d addresses" % (sent, len(records), args.rounds, len(socks)))


def trap(args):
    sel = selectors.DefaultSelector()
    for spec in args.listen.split(","):
        ip, port = spec.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, int(port)))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    log = open(args.log, "a", buffering=1)
    # Ready once every socket listens: the script waits for this line.
    log.write("listening\n")
    while True:
        for key, _ in sel.select():
            try:
                conn, remote = key.fileobj.accept()
            except BlockingIOError:
                continue
            local = conn.getsockname()
            log.write("%.3f %s:%d %s\n" % (time.monotonic(), local[0], local[1], remote[0]))
            try:
                conn.setblocking(False)
                conn.send(b"SSH-2.0-OpenSSH_9.6\r\n")
            except OSError:
                pass
            conn.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--from", dest="sources", required=True)
    s.add_argument("--spec", required=True)
    s.add_argument("--rounds", type=int, default=1)
    s.add_argument("--every", type=float, default=2.0)
    t = sub.add_parser("trap")
    t.add_argument("--listen", required=True)
    t.add_argument("--log", required=True)
    args = p.parse_args()
    if args.cmd == "send":
        send(args)
    else:
        trap(args)


if __name__ == "__main__":
    sys.exit(main())
