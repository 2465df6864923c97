"""What observability costs: three Ironcrest servers from the same release binary and the dev
environment's configuration, side by side in one run:

- off:      no metrics, no audit log, no tracing;
- metrics+audit: /metrics on (and scraped every second, as Prometheus would) and the audit
            log written to a file;
- +tracing: the same, and every request traced (sampler always_on) and exported over
            OTLP/HTTP to a receiver stand-in in this script that answers like a collector.

Each scenario runs against the three, alternated, at each client count; the ratios are
req/s of a side ÷ req/s of off (1.00 = no cost). Then the cluster-side guard's added latency
per command: the same allowlisted command line run through `ironcrest-guard` (as sshd's
forced command runs it) and directly with /bin/sh, one after the other, many times.
Run it with bench/run --suite observability (which prepares the venv).
"""

import argparse
import asyncio
import copy
import http.server
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

import aiohttp
import yaml

from ironbench import drive, start_server, summary

SYSTEM = "cluster-slurm-ssh"
SCENARIOS = {
    "status/systems": "/status/systems",
    "ops/stat": f"/filesystem/{SYSTEM}/ops/stat?path=/home/fireuser/ironbench/small.txt",
    "compute/jobs": f"/compute/{SYSTEM}/jobs",
}
SIDES = ("off", "metrics+audit", "+tracing")


class OtlpStandIn(http.server.BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: reads each export and answers an empty
    ExportTraceServiceResponse, counting exports and bytes."""

    exports = 0
    received = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        OtlpStandIn.exports += 1
        OtlpStandIn.received += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def variants(base, workdir, collector):
    off = copy.deepcopy(base)
    off.pop("audit", None)
    telemetry = off.setdefault("telemetry", {})
    telemetry["metrics"] = {"enabled": False}
    telemetry["tracing"] = {"enabled": False}
    observed = copy.deepcopy(off)
    observed["telemetry"]["metrics"] = {"enabled": True}
    observed["audit"] = {"enabled": True, "path": os.path.join(workdir, "audit.log")}
    traced = copy.deepcopy(observed)
    traced["audit"] = {"enabled": True, "path": os.path.join(workdir, "audit-traced.log")}
    traced["telemetry"]["tracing"] = {"enabled": True, "protocol": "http", "endpoint": collector,
                                      "sampler": "always_on"}
    return {"off": off, "metrics+audit": observed, "+tracing": traced}



def scrape_every_second(url, stop):
    """Prometheus' part: render /metrics once a second while the benchmark runs."""
    while not stop.wait(1):
        try:
            urllib.request.urlopen(f"{url}/metrics", timeout=5).read()
        except OSError:
            pass


async def serving(args, urls, token):
    print(f"{'operation':<15} {'clients':>7} " + " ".join(f"{s + ' req/s':>19}" for s in SIDES)
          + f" {'metrics+audit/off':>17} {'+tracing/off':>12}")
    headers = {"Authorization": f"Bearer {token}"}
    for name, path in SCENARIOS.items():
        sessions = {side: aiohttp.ClientSession(urls[side], headers=headers,
                                                connector=aiohttp.TCPConnector(limit=0))
                    for side in SIDES}
        try:
            for side, session in sessions.items():
                async with session.get(path) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{name} ({side}): HTTP {response.status}: {await response.text()}")
            for clients in [int(c) for c in args.clients.split(",")]:
                rates = {side: [] for side in SIDES}

                def operation(session):
                    async def call():
                        async with session.get(path) as response:
                            await response.read()
                            return response.status == 200
                    return call

                # Rotated, each side in turn first, so drift in the machine's load hits all alike.
                for round_ in range(args.rounds):
                    order = SIDES[round_ % 3:] + SIDES[:round_ % 3]
                    for side in order:
                        failures = []
                        latencies, elapsed = await drive(clients, args.seconds,
                                                         operation(sessions[side]), failures)
                        if failures:
                            raise RuntimeError(f"{name} ({side}): {len(failures)} failed requests")
                        rate, _, _, _ = summary(latencies, elapsed, 0)
                        rates[side].append(rate)
                mean = {side: statistics.mean(rates[side]) for side in SIDES}
                print(f"{name:<15} {clients:>7} " + " ".join(f"{mean[s]:>19.0f}" for s in SIDES)
                      + f" {mean['metrics+audit'] / mean['off']:>17.3f}"
                      f" {mean['+tracing'] / mean['off']:>12.3f}")
        finally:
            for session in sessions.values():
                await session.close()


def guard_latency(guard, workdir, runs):
    """Per-command cost of the guard: one allowlisted line through the guard vs /bin/sh."""
    line = "LC_ALL=C IRONCREST_REQUEST_ID=bench id"
    env = dict(os.environ, SSH_ORIGINAL_COMMAND=line, SSH_CLIENT="127.0.0.1 50000 22")
    log = os.path.join(workdir, "guard.log")
    through = [guard, "--log-file", log]
    direct = ["/bin/sh", "-c", line]
    timings = {"guard": [], "direct": []}
    for _ in range(runs):
        for name, argv in (("guard", through), ("direct", direct)):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            timings[name].append((time.perf_counter() - started) * 1000)
    guard_ms = statistics.median(timings["guard"])
    direct_ms = statistics.median(timings["direct"])
    print(f"\nguard: {runs} runs of `{line}`: median {guard_ms:.2f} ms through the guard, "
          f"{direct_ms:.2f} ms with /bin/sh directly: +{guard_ms - direct_ms:.2f} ms per command "
          f"({guard_ms / direct_ms:.2f}x)")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="rotations of the three sides per point")
    parser.add_argument("--guard-runs", type=int, default=300)
    args, _ = parser.parse_known_args()
    env = os.environ
    repo = env["IRONCREST_DEV_REPO"]
    binary = os.path.join(repo, "target", "release", "ironcrest")
    guard = os.path.join(repo, "target", "release", "ironcrest-guard")
    with open(os.path.join(env["IRONCREST_DEV_PREFIX"], "ironcrest", "config.yaml")) as f:
        base = yaml.safe_load(f)
    token = subprocess.run([os.path.join(repo, "scripts", "dev-env"), "token"], check=True,
                           capture_output=True, text=True).stdout.strip()
    workdir = tempfile.mkdtemp(prefix="ironcrest-observability-bench-")
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpStandIn)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    configs = variants(base, workdir, f"http://127.0.0.1:{collector.server_port}")
    ports = {"off": 8111, "metrics+audit": 8112, "+tracing": 8113}
    servers = {side: start_server(binary, configs[side], ports[side], workdir, side) for side in SIDES}
    urls = {side: f"http://127.0.0.1:{ports[side]}" for side in SIDES}
    stop = threading.Event()
    for side in ("metrics+audit", "+tracing"):
        threading.Thread(target=scrape_every_second, args=(urls[side], stop), daemon=True).start()
    try:
        await serving(args, urls, token)
    finally:
        stop.set()
        for process in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        collector.shutdown()
    with open(configs["metrics+audit"]["audit"]["path"]) as f:
        audited = sum(1 for _ in f)
    print(f"\naudit lines written: {audited}; OTLP exports received: {OtlpStandIn.exports} "
          f"({OtlpStandIn.received / 1e6:.1f} MB)")
    if OtlpStandIn.exports == 0:
        raise RuntimeError("the traced server exported nothing: its ratio would mean nothing")
    guard_latency(guard, workdir, args.guard_runs)


if __name__ == "__main__":
    asyncio.run(main())
