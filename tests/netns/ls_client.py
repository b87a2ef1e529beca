#!/usr/bin/env python3
"""A minimal LocalSend v2 sender for tests/netns/localsend.sh: what localsendd cannot send.

    ls_client.py folder HOST DIR   send DIR's files as DIR/relative/path (a folder transfer)
    ls_client.py text HOST TEXT    send a text message (one text/plain file with a preview)
    ls_client.py announce6 IFACE JSON       send JSON (an announcement) to LocalSend's IPv6
                                            group out of IFACE
    ls_client.py listen6 IFACE ALIAS SECS   wait on the IPv6 group for an announcement by
                                            ALIAS; print it and its source

Prints the HTTP status of prepare-upload (and fails unless every upload got 200). HTTPS
without checking the server's certificate and without a client certificate: lanyard asks
for one but does not require it (an unverified device). Python's standard library only.
"""
import hashlib
import json
import os
import ssl
import sys
import urllib.parse
import uuid
from http.client import HTTPSConnection

PORT = 53317
INFO = {
    "alias": "pyclient",
    "version": "2.1",
    "deviceModel": "python",
    "deviceType": "headless",
    "fingerprint": "PY" + uuid.uuid4().hex.upper(),
    "port": PORT,
    "protocol": "https",
    "download": False,
}


def conn(host):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return HTTPSConnection(host, PORT, context=ctx, timeout=60)


def post(c, path, body, ctype="application/json"):
    c.request("POST", path, body=body, headers={"Content-Type": ctype, "Content-Length": str(len(body))})
    r = c.getresponse()
    return r.status, r.read()


def prepare(c, files):
    body = json.dumps({"info": INFO, "files": files}).encode()
    return post(c, "/api/localsend/v2/prepare-upload", body)


def folder(host, root):
    top = os.path.basename(os.path.normpath(root))
    files, paths = {}, {}
    for d, _, names in os.walk(root):
        for n in sorted(names):
            p = os.path.join(d, n)
            rel = top + "/" + os.path.relpath(p, root).replace(os.sep, "/")
            data = open(p, "rb").read()
            fid = uuid.uuid4().hex
            files[fid] = {"id": fid, "fileName": rel, "size": len(data), "fileType": "application/octet-stream",
                          "sha256": hashlib.sha256(data).hexdigest(), "preview": None, "metadata": None}
            paths[fid] = p
    c = conn(host)
    status, answer = prepare(c, files)
    print(status)
    if status != 200:
        return 1
    answer = json.loads(answer)
    session = answer["sessionId"]
    for fid, token in answer["files"].items():
        q = urllib.parse.urlencode({"sessionId": session, "fileId": fid, "token": token})
        status, said = post(c, "/api/localsend/v2/upload?" + q, open(paths[fid], "rb").read(), "application/octet-stream")
        if status != 200:
            print(f"upload of {files[fid]['fileName']}: {status} {said!r}", file=sys.stderr)
            return 1
    return 0 if len(answer["files"]) == len(files) else 1


def text(host, message):
    data = message.encode()
    fid = uuid.uuid4().hex
    files = {fid: {"id": fid, "fileName": fid + ".txt", "size": len(data), "fileType": "text/plain",
                   "sha256": None, "preview": message, "metadata": None}}
    status, _ = prepare(conn(host), files)
    print(status)
    # A message is shown, and nothing accepted: 204.
    return 0 if status == 204 else 1


GROUP_V6 = "ff12::fd3a:e420"


def announce6(iface, body):
    import socket
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(iface))
    s.sendto(body.encode(), (GROUP_V6, PORT, 0, socket.if_nametoindex(iface)))
    return 0


def listen6(iface, alias, secs):
    import socket
    import struct
    import time
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::", PORT))
    mreq = socket.inet_pton(socket.AF_INET6, GROUP_V6) + struct.pack("@I", socket.if_nametoindex(iface))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    deadline = time.monotonic() + float(secs)
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            break
        try:
            a = json.loads(data)
        except ValueError:
            continue
        if a.get("alias") == alias:
            print(json.dumps({"from": src[0], "announcement": a}))
            return 0
    return 1


if __name__ == "__main__":
    kind, host, arg = sys.argv[1:4]
    if kind == "listen6":
        sys.exit(listen6(host, arg, sys.argv[4]))
    sys.exit({"folder": folder, "text": text, "announce6": announce6}[kind](host, arg))
