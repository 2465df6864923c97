"""Slow clients from one address cannot take the server from others.

From 127.0.0.2, 600 raw connections each send an incomplete request and then one more
header line every ~2 s, never finishing it (slowloris). The server admits at most
`max_connections_per_address` (256) of them, refusing the rest with a 503 and closing,
and closes the admitted ones `header_timeout` (10 s) after they opened, dribbling or not.
Meanwhile clients from 127.0.0.1 are served normally, and once the attack is over a fresh
connection from 127.0.0.2 is served again.
"""

import json
import os
import resource
import select
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx

SLOW_CONNECTIONS = 600
PER_ADDRESS = 256  # server.connections.max_connections_per_address in the dev config
HEADER_TIMEOUT = 10  # server.connections.header_timeout in the dev config
MARGIN = 8
DRIBBLE_EVERY = 2.0
PROBES = 50
PROBE_SPREAD = 12.0  # seconds the probes are spread over, within the hold period
ATTACKER = "127.0.0.2"
FIRST_LINES = b"GET /status/systems HTTP/1.1\r\nHost: x\r\n"


class Slow:
    def __init__(self, sock, opened):
        self.sock = sock
        self.opened = opened
        self.closed = None  # monotonic time the server's close was seen
        self.how = None  # "eof" or "reset"
        self.data = b""
        self.lines_sent = 0

    def lifetime(self):
        return self.closed - self.opened

    def drain(self, now):
        """Reads what is there; notes the close if the server closed."""
        while self.closed is None:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except (ConnectionResetError, BrokenPipeError):
                self.closed, self.how = now, "reset"
                return
            if not chunk:
                self.closed, self.how = now, "eof"
                return
            self.data += chunk

    def dribble(self, now):
        try:
            self.sock.send(b"X-Dribble-%d: %d\r\n" % (self.lines_sent, self.lines_sent))
            self.lines_sent += 1
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            self.drain(now)
            if self.closed is None:
                self.closed, self.how = now, "reset"


def refused_with_503(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not data.startswith(b"HTTP/1.1 503") or not sep:
        return False
    return json.loads(body).get("message") is not None


def probe(url, results, start):
    """PROBES fresh-connection GETs from 127.0.0.1 spread over PROBE_SPREAD seconds."""
    for i in range(PROBES):
        delay = start + i * PROBE_SPREAD / PROBES - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = time.monotonic()
        try:
            r = httpx.get(f"{url}/status/liveness/", timeout=5)
            results.append((r.status_code, time.monotonic() - t, None))
        except httpx.HTTPError as e:
            results.append((None, time.monotonic() - t, f"{type(e).__name__}: {e}"))


def test_slow_clients_are_capped_and_timed_out_while_others_are_served():
    url = os.environ["IRONCREST_DEV_URL"]
    parts = urlsplit(url)
    server = (parts.hostname, parts.port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    # The server is up (it may be restarting: wait) and serves 127.0.0.2.
    deadline = time.monotonic() + 60
    with httpx.Client(transport=httpx.HTTPTransport(local_address=ATTACKER)) as before:
        while True:
            try:
                assert before.get(f"{url}/status/liveness/", timeout=10).status_code == 200
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    slows = []
    probes = []
    prober = None
    try:
        probe_start = time.monotonic()
        prober = threading.Thread(target=probe, args=(url, probes, probe_start), daemon=True)
        prober.start()

        started = time.monotonic()
        for _ in range(SLOW_CONNECTIONS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            slows.append(Slow(s, None))
            s.bind((ATTACKER, 0))
            s.settimeout(5)
            s.connect(server)
            slows[-1].opened = time.monotonic()
            s.sendall(FIRST_LINES)
            s.setblocking(False)
        opened = time.monotonic()
        open_duration = opened - started

        poller = select.poll()
        by_fd = {}
        for slow in slows:
            poller.register(slow.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            by_fd[slow.sock.fileno()] = slow

        def pump(until):
            while True:
                timeout_ms = max(0, int((until - time.monotonic()) * 1000))
                for fd, _ in poller.poll(timeout_ms):
                    slow = by_fd[fd]
                    slow.drain(time.monotonic())
                    if slow.closed is not None:
                        poller.unregister(fd)
                if time.monotonic() >= until or all(s.closed is not None for s in slows):
                    return

        # Shortly after opening: the connections past the cap were refused and closed.
        pump(opened + 1.5)
        still_open_early = sum(s.closed is None for s in slows)

        # Dribble a header line every ~2 s to the open ones until the server closed all
        # (or the last one's header_timeout + margin passed).
        deadline = max(s.opened for s in slows) + HEADER_TIMEOUT + MARGIN
        next_dribble = time.monotonic()
        while any(s.closed is None for s in slows) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_dribble:
                for slow in slows:
                    if slow.closed is None:
                        slow.dribble(now)
                        if slow.closed is not None:
                            poller.unregister(slow.sock.fileno())
                next_dribble = now + DRIBBLE_EVERY
            pump(min(next_dribble, deadline))
        all_closed_after = time.monotonic() - opened

        prober.join(timeout=PROBE_SPREAD + 30)
        assert not prober.is_alive()
    finally:
        for slow in slows:
            slow.sock.close()

    # A fresh connection from the attacker's address is served again.
    with httpx.Client(transport=httpx.HTTPTransport(local_address=ATTACKER)) as again:
        after = again.get(f"{url}/status/liveness/", timeout=10)

    refused = [s for s in slows if s.data.startswith(b"HTTP/1.1 503")]
    readable_503 = [s for s in refused if refused_with_503(s.data)]
    admitted = [s for s in slows if not s.data.startswith(b"HTTP/1.1 503")]
    still_open = [s for s in slows if s.closed is None]
    closed = [s for s in slows if s.closed is not None]
    lifetimes = sorted(s.lifetime() for s in admitted if s.closed is not None)
    late = [s.lifetime() for s in closed if s.lifetime() > HEADER_TIMEOUT + MARGIN]
    other_replies = {s.data[:40] for s in admitted if s.data}
    probe_ok = [p for p in probes if p[0] == 200]
    probe_latency = sorted(p[1] for p in probes)
    hows = {h: sum(s.how == h for s in slows) for h in ("eof", "reset", None)}

    print(
        f"\nslow clients: {SLOW_CONNECTIONS} opened from {ATTACKER} in {open_duration:.2f} s;"
        f" open 1.5 s later: {still_open_early} (cap {PER_ADDRESS});"
        f" 503 read on {len(refused)} ({len(readable_503)} complete);"
        f" admitted (no 503) {len(admitted)}, lifetimes"
        f" min {lifetimes[0] if lifetimes else float('nan'):.1f} s /"
        f" median {lifetimes[len(lifetimes) // 2] if lifetimes else float('nan'):.1f} s /"
        f" max {lifetimes[-1] if lifetimes else float('nan'):.1f} s;"
        f" header lines dribbled {sum(s.lines_sent for s in slows)};"
        f" all closed {all_closed_after:.1f} s after opening; still open {len(still_open)};"
        f" closes seen as {hows}; other replies {other_replies or '-'}"
    )
    print(
        f"  probes from 127.0.0.1: {len(probe_ok)}/{len(probes)} OK, latency"
        f" median {probe_latency[len(probe_latency) // 2] * 1000:.0f} ms,"
        f" max {probe_latency[-1] * 1000:.0f} ms;"
        f" failures {[p for p in probes if p[0] != 200][:5]}"
    )
    print(f"  fresh connection from {ATTACKER} after the attack: {after.status_code}")

    assert len(probes) == PROBES and len(probe_ok) == PROBES, probes
    assert still_open_early <= PER_ADDRESS
    assert len(readable_503) > 0, "no refused connection read its 503"
    assert not still_open, f"{len(still_open)} slow connections still open at the deadline"
    assert not late, f"closed later than {HEADER_TIMEOUT + MARGIN} s after opening: {late[:10]}"
    assert after.status_code == 200
