"""Soak, idle connections and overload, against Ironcrest servers started here from one binary
with the dev environment's configuration (each on a free port of its own; the dev server is left
alone). Run it with bench/soak, which prepares the venv, the files and the binary.

- soak:     --clients keep-alive clients (one connection each, never closed by the client) send a
            weighted mix of routes back to back for --seconds. Per route: requests, errors (any
            answer but the route's success status, or a transport error), p50/p99/max. Dropped
            connections: connections opened beyond one per client (the server closed one, or one
            broke). The server's RSS, open descriptors and client connections are sampled every
            --sample seconds from /proc; the slopes after the warm-up are least-squares fits.
            After the run the server's client connections must be back to their count before it.
- idle:     --idle connections each send a liveness request every few seconds (under the dev
            configuration's header_timeout, which would close them) and otherwise sit idle; the
            server's RSS and descriptors with them open, against before, give the cost of one.
- overload: --overload-clients clients, far more than the server's places and queue, on a route
            that runs a command on the cluster; a client answered 503/429 waits its Retry-After,
            as pyfirecrest does on 429. Twice: with the default shedding, and with it off
            (max_in_flight: 0). Per answer kind: count, p50/p99/max.

--check makes the exit status 1 on any soak error, dropped connection, or client connections not
back to their count (scripts/test runs a short soak with it); timings never fail it.
"""

import argparse
import asyncio
import copy
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time

import aiohttp
import yaml

from ironbench import rss_kib, start_server

SYSTEM = "cluster-slurm-ssh"
BENCH_DIR = "/home/fireuser/ironbench"
SOAK_DIR = f"{BENCH_DIR}/soak"


def routes(job_id):
    """name → (weight, method, path, success status, with a body). Reads only, but for one
    upload per client that overwrites its own file."""
    fs = f"/filesystem/{SYSTEM}/ops"
    small = f"{BENCH_DIR}/small.txt"
    return {
        "status/systems": (3, "GET", "/status/systems", 200, False),
        "status/userinfo": (2, "GET", f"/status/{SYSTEM}/userinfo", 200, False),
        "status/partitions": (1, "GET", f"/status/{SYSTEM}/partitions", 200, False),
        "status/nodes": (1, "GET", f"/status/{SYSTEM}/nodes", 200, False),
        "compute/job": (1, "GET", f"/compute/{SYSTEM}/jobs/{job_id}", 200, False),
        "ops/ls": (3, "GET", f"{fs}/ls?path={BENCH_DIR}", 200, False),
        "ops/stat": (3, "GET", f"{fs}/stat?path={small}", 200, False),
        "ops/head": (2, "GET", f"{fs}/head?path={small}", 200, False),
        "ops/checksum": (1, "GET", f"{fs}/checksum?path={small}", 200, False),
        "ops/download 64 KiB": (1, "GET", f"{fs}/download?path={BENCH_DIR}/64-kib.bin", 200, False),
        "ops/upload 4 KiB": (1, "POST", f"{fs}/upload?path={SOAK_DIR}", 204, True),
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Token:
    """A client-credentials token of the dev IdP, fetched again at half its lifetime (on a
    connection of its own: the soak counts the connections of its clients)."""

    def __init__(self):
        self.value, self.renew_at = None, 0.0
        self.lock = asyncio.Lock()

    async def get(self):
        if time.monotonic() < self.renew_at:
            return self.value
        async with self.lock:
            if time.monotonic() < self.renew_at:
                return self.value
            env = os.environ
            auth = aiohttp.BasicAuth(env["IRONCREST_DEV_CLIENT_ID"], env["IRONCREST_DEV_CLIENT_SECRET"])
            async with aiohttp.ClientSession() as http, \
                    http.post(env["IRONCREST_DEV_OIDC_TOKEN_URL"], auth=auth,
                              data={"grant_type": "client_credentials"}) as response:
                response.raise_for_status()
                body = await response.json()
            self.value = body["access_token"]
            self.renew_at = time.monotonic() + body.get("expires_in", 600) / 2
        return self.value


def server_state(pid, port):
    """(RSS KiB, open descriptors, established client connections on `port`) of the server."""
    inodes = set()
    descriptors = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        descriptors += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    clients = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    clients += 1
    return rss_kib(pid), descriptors, clients


def slope_per_minute(samples):
    """Least-squares slope of (seconds, value) pairs, per minute; None under two samples."""
    if len(samples) < 2:
        return None
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 60


def percentile(ordered, fraction):
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def row(name, count, errors, latencies):
    ordered = sorted(latencies)
    if not ordered:
        return f"{name:<22} {count:>9} {errors:>7} {'-':>8} {'-':>8} {'-':>8}"
    return (f"{name:<22} {count:>9} {errors:>7} {statistics.median(ordered) * 1000:>8.1f} "
            f"{percentile(ordered, 0.99):>8.1f} {ordered[-1] * 1000:>8.1f}")


async def prepare(url, token, http):
    """A finished job for compute/job, and the soak's upload directory (made by bench/soak)."""
    headers = {"Authorization": f"Bearer {await token.get()}"}
    body = {"job": {"name": "ironcrest-soak", "workingDirectory": SOAK_DIR,
                    "script": "#!/bin/bash\ntrue\n"}}
    async with http.post(f"{url}/compute/{SYSTEM}/jobs", json=body, headers=headers) as response:
        if response.status != 201 and response.status != 200:
            raise RuntimeError(f"job submission: HTTP {response.status}: {await response.text()}")
        job_id = (await response.json())["jobId"]
    # Every route answers once before the clock starts (this also opens the SSH connections).
    deadline = time.monotonic() + 60
    for name, (_, method, path, expected, with_body) in routes(job_id).items():
        while True:
            status, text = await request_once(http, url, method, path, headers, with_body, "prepare")
            if status == expected:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: HTTP {status}: {text[:300]}")
            await asyncio.sleep(1)
    return job_id


def upload_form(name):
    form = aiohttp.FormData()
    form.add_field("file", os.urandom(4096), filename=f"{name}.bin",
                   content_type="application/octet-stream")
    return form


async def request_once(http, url, method, path, headers, with_body, name):
    data = upload_form(name) if with_body else None
    async with http.request(method, f"{url}{path}", headers=headers, data=data) as response:
        text = await response.text(errors="replace")
        return response.status, text


async def soak(args, binary, base, workdir):
    config = copy.deepcopy(base)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(binary, config, port, workdir, "soak")
    token = Token()
    created = []
    trace = aiohttp.TraceConfig()

    async def on_created(_session, _context, _params):
        created.append(time.monotonic())

    trace.on_connection_create_end.append(on_created)
    failed = False
    try:
        async with aiohttp.ClientSession() as setup:
            job_id = await prepare(url, token, setup)
        table = routes(job_id)
        names = list(table)
        weights = [table[n][0] for n in names]
        latencies = {n: [] for n in names}
        errors = {n: 0 for n in names}
        examples = {}
        closes = [0]
        baseline = server_state(server.pid, port)
        samples = []
        started = time.monotonic()
        deadline = started + args.seconds
        connector = aiohttp.TCPConnector(limit=args.clients, keepalive_timeout=120)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         trace_configs=[trace]) as http:
            async def client(number):
                rng = random.Random(number)
                while time.monotonic() < deadline:
                    name = rng.choices(names, weights)[0]
                    _, method, path, expected, with_body = table[name]
                    headers = {"Authorization": f"Bearer {await token.get()}"}
                    begun = time.monotonic()
                    try:
                        data = upload_form(f"client-{number}") if with_body else None
                        async with http.request(method, f"{url}{path}", headers=headers,
                                                data=data) as response:
                            await response.read()
                            status = response.status
                            if response.headers.get("Connection", "").lower() == "close":
                                closes[0] += 1
                    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                        status = f"{type(error).__name__}: {error}"
                    if status == expected:
                        latencies[name].append(time.monotonic() - begun)
                    else:
                        errors[name] += 1
                        examples.setdefault(name, status)

            async def sampler():
                while True:
                    now = time.monotonic()
                    if now >= deadline:
                        return
                    rss, fds, clients = server_state(server.pid, port)
                    samples.append((now - started, rss, fds, clients))
                    print(f"  t={now - started:6.0f} s  RSS {rss:>8} KiB  fds {fds:>5}  client "
                          f"connections {clients:>5}  answered {sum(map(len, latencies.values())):>9}",
                          flush=True)
                    await asyncio.sleep(min(args.sample, max(0.0, deadline - time.monotonic())))

            await asyncio.gather(sampler(), *(client(i) for i in range(args.clients)))
            elapsed = time.monotonic() - started
            rss, fds, clients = server_state(server.pid, port)
            samples.append((elapsed, rss, fds, clients))
        # The clients hung up: the server's client connections must go back to their count.
        settled_by = time.monotonic() + 30
        while True:
            after = server_state(server.pid, port)
            if after[2] <= baseline[2] or time.monotonic() > settled_by:
                break
            await asyncio.sleep(0.5)

        total = sum(len(v) for v in latencies.values()) + sum(errors.values())
        print(f"\nsoak: {args.clients} clients for {elapsed:.0f} s, {total} requests "
              f"({total / elapsed:.0f}/s)")
        print(f"{'route':<22} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name in names:
            print(row(name, len(latencies[name]) + errors[name], errors[name], latencies[name]))
        everything = [x for v in latencies.values() for x in v]
        print(row("all", total, sum(errors.values()), everything))
        for name, example in examples.items():
            print(f"  ! {name}: e.g. {example}")
        dropped = len(created) - args.clients
        print(f"connections opened {len(created)} for {args.clients} clients: dropped {max(dropped, 0)};"
              f" 'Connection: close' answers {closes[0]}")
        warm = min(args.warmup, elapsed / 3)
        after_warmup = [s for s in samples if s[0] >= warm]
        rss_slope = slope_per_minute([(t, r) for t, r, _, _ in after_warmup])
        fd_slope = slope_per_minute([(t, f) for t, _, f, _ in after_warmup])
        fmt = lambda v, unit: "-" if v is None else f"{v:+.1f} {unit}"
        print(f"after {warm:.0f} s of warm-up ({len(after_warmup)} samples): RSS "
              f"{after_warmup[0][1]} → {after_warmup[-1][1]} KiB, slope {fmt(rss_slope, 'KiB/min')}; "
              f"fds {after_warmup[0][2]} → {after_warmup[-1][2]}, slope {fmt(fd_slope, 'fds/min')}")
        print(f"server before → after the run: fds {baseline[1]} → {after[1]}, client connections "
              f"{baseline[2]} → {after[2]}, RSS {baseline[0]} → {after[0]} KiB")
        if sum(errors.values()):
            print("FAIL: requests failed", file=sys.stderr)
            failed = True
        if dropped > 0 or closes[0]:
            print("FAIL: connections were dropped", file=sys.stderr)
            failed = True
        if after[2] > baseline[2]:
            print("FAIL: client connections still open on the server after the run", file=sys.stderr)
            failed = True
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return failed


async def idle(args, binary, base, workdir):
    config = copy.deepcopy(base)
    port = free_port()
    server = start_server(binary, config, port, workdir, "idle")
    header_timeout = config["server"]["connections"].get("header_timeout", 30)
    every = max(1.0, header_timeout / 2)
    request = f"GET /status/liveness/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    closed = [0]
    stop = asyncio.Event()

    async def exchange(reader, writer):
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:100])

    async def connection(ready):
        writer, released = None, False
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await exchange(reader, writer)
            ready.release()
            released = True
            rng = random.Random()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), every * rng.uniform(0.8, 1.0))
                except asyncio.TimeoutError:
                    await exchange(reader, writer)
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            closed[0] += 1
        finally:
            if not released:
                ready.release()
            if writer is not None:
                writer.close()

    try:
        time.sleep(2)
        before = server_state(server.pid, port)
        ready = asyncio.Semaphore(0)
        tasks = []
        for _ in range(args.idle):
            tasks.append(asyncio.create_task(connection(ready)))
            await asyncio.sleep(0)
        for _ in range(args.idle):
            await ready.acquire()
        # Past a round of liveness requests on every connection, several times.
        samples = []
        for _ in range(3):
            await asyncio.sleep(every)
            samples.append(server_state(server.pid, port))
        stop.set()
        await asyncio.gather(*tasks)
        with_open = max(samples, key=lambda s: s[0])
        rss_per = (with_open[0] - before[0]) / args.idle
        print(f"\nidle: {args.idle} connections, each a liveness request every ~{every:.0f} s; "
              f"closed by the server or broken: {closed[0]}")
        print(f"server before: RSS {before[0]} KiB, fds {before[1]}, client connections {before[2]}")
        for i, (rss, fds, clients) in enumerate(samples):
            print(f"  sample {i + 1}: RSS {rss} KiB, fds {fds}, client connections {clients}")
        print(f"memory per connection: {rss_per:.1f} KiB (RSS {before[0]} → {with_open[0]} KiB); "
              f"descriptors per connection: {(with_open[1] - before[1]) / args.idle:.2f}")
        return closed[0] > 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def overload(args, binary, base, workdir):
    path = f"/filesystem/{SYSTEM}/ops/checksum?path={BENCH_DIR}/small.txt"
    print(f"\noverload: {args.overload_clients} clients on ops/checksum (a command on the cluster "
          f"each) for {args.overload_seconds:.0f} s; a shed client waits its Retry-After")
    print(f"{'shedding':<34} {'answer':<28} {'count':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, limits in (("default (256 + 1024 queued, 5 s)", None), ("off (max_in_flight: 0)", 0)):
        config = copy.deepcopy(base)
        if limits is not None:
            config.setdefault("gateway", {}).setdefault("limits", {})["overload"] = {"max_in_flight": limits}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(binary, config, port, workdir, f"overload-{limits}")
        token = Token()
        answers = {}
        peak = [0, 0]
        try:
            connector = aiohttp.TCPConnector(limit=args.overload_clients)
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                headers = {"Authorization": f"Bearer {await token.get()}"}
                async with http.get(f"{url}{path}", headers=headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
                deadline = time.monotonic() + args.overload_seconds

                async def client():
                    while time.monotonic() < deadline:
                        begun = time.monotonic()
                        wait = 0
                        try:
                            async with http.get(f"{url}{path}", headers=headers) as response:
                                body = await response.read()
                                kind = f"{response.status}"
                                if response.status in (429, 503):
                                    wait = int(response.headers.get("Retry-After", "1"))
                                    kind += " shed" if b'"overloaded"' in body else " other"
                        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                            kind = type(error).__name__
                        answers.setdefault(kind, []).append(time.monotonic() - begun)
                        if wait:
                            await asyncio.sleep(wait)

                async def watch():
                    while time.monotonic() < deadline:
                        _, fds, clients = server_state(server.pid, port)
                        peak[0], peak[1] = max(peak[0], fds), max(peak[1], clients)
                        await asyncio.sleep(1)

                await asyncio.gather(watch(), *(client() for _ in range(args.overload_clients)))
            for kind in sorted(answers):
                ordered = sorted(answers[kind])
                print(f"{label:<34} {kind:<28} {len(ordered):>8} {statistics.median(ordered) * 1000:>8.1f} "
                      f"{percentile(ordered, 0.99):>8.1f} {ordered[-1] * 1000:>8.1f}")
            print(f"{label:<34} server peak: fds {peak[0]}, client connections {peak[1]}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--config", required=True, help="the rendered dev configuration")
    parser.add_argument("--phases", default="soak,idle,overload")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--warmup", type=float, default=60, help="seconds left out of the slopes (at most a third)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples of the server")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--overload-clients", type=int, default=3000)
    parser.add_argument("--overload-seconds", type=float, default=60)
    parser.add_argument("--check", action="store_true", help="exit 1 on errors, drops or leftover connections")
    args = parser.parse_args()
    with open(args.config) as f:
        base = yaml.safe_load(f)
    # Every client comes from 127.0.0.1; the per-address cap (256 in the dev configuration)
    # is for real clients. No audit log (the soak would write gigabytes), warnings only.
    base["server"].setdefault("connections", {})["max_connections_per_address"] = 0
    base.pop("audit", None)
    base.setdefault("logger", {})["level"] = "warn"
    workdir = tempfile.mkdtemp(prefix="ironcrest-soak-")
    print(f"server: {args.binary}; logs and configurations in {workdir}")
    failed = False
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for phase in phases:
        if phase == "soak":
            failed |= await soak(args, args.binary, base, workdir)
        elif phase == "idle":
            failed |= await idle(args, args.binary, base, workdir)
        elif phase == "overload":
            await overload(args, args.binary, base, workdir)
        else:
            parser.error(f"unknown phase {phase!r} (soak, idle, overload)")
    if args.check and failed:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
