"""Conditional GETs: clients polling the same answer with and without `If-None-Match`, side by
side against one Ironcrest started here from this tree's release binary with the dev
environment's configuration (the dev server may run another build).

- plain:       every poll is a GET and reads the whole answer;
- conditional: every poll sends the tag of the last answer it got (as a poller that keeps its
               last answer would) and gets a 304 without a body while nothing changed.

Per scenario and client count, the two sides run in turn (rotated over --rounds); the table shows
req/s, body bytes per poll, and the scheduler's job listings per second taken from the server's
/metrics (the jobs cache, not the 304, is what spares the scheduler: the columns show that the
304 adds no calls and saves none). The ratios are conditional ÷ plain.
Run it with bench/run --suite conditional (which builds the release binary).
"""

import argparse
import asyncio
import copy
import os
import re
import signal
import statistics
import subprocess
import tempfile
import urllib.request

import aiohttp
import yaml

from ironbench import drive, start_server, summary

SYSTEM = "cluster-slurm-ssh"
SCENARIOS = {
    "compute/jobs": f"/compute/{SYSTEM}/jobs",
    "ops/ls 300": f"/filesystem/{SYSTEM}/ops/ls?path=/home/fireuser/ironbench/ls-300",
    "status/systems": "/status/systems",
}
SIDES = ("plain", "conditional")
PORT = 8121


def start(binary, base, workdir):
    config = copy.deepcopy(base)
    config["audit"] = {"enabled": True, "path": os.path.join(workdir, "audit.log")}
    config.setdefault("telemetry", {})["metrics"] = {"enabled": True}
    return start_server(binary, config, PORT, workdir, "conditional")


def scheduler_listings(url):
    """ironcrest_scheduler_calls_total{call="jobs"}, summed over its other labels."""
    page = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith("ironcrest_scheduler_calls_total{") and re.search(r'call="jobs"', line))


def poller(http, path, side, received):
    """One poll; `received` collects the body bytes of every poll."""
    last_tag = {}

    async def poll():
        headers = {}
        if side == "conditional" and "tag" in last_tag:
            headers["If-None-Match"] = last_tag["tag"]
        async with http.get(path, headers=headers) as response:
            body = await response.read()
            if response.status == 200:
                last_tag["tag"] = response.headers["ETag"]
            elif response.status != 304:
                return False
            received.append(len(body))
            return True
    return poll


async def run(args, url, token):
    print(f"{'poll':<15} {'clients':>7} {'plain req/s':>12} {'cond. req/s':>12} {'req/s ratio':>11} "
          f"{'plain B/poll':>12} {'cond. B/poll':>12} {'bytes ratio':>11} {'304 share':>9} "
          f"{'plain squeue/s':>14} {'cond. squeue/s':>14}")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, headers=headers, connector=aiohttp.TCPConnector(limit=0)) as http:
        for name, path in SCENARIOS.items():
            async with http.get(path) as response:
                if response.status != 200 or "ETag" not in response.headers:
                    raise RuntimeError(f"{name}: HTTP {response.status} without a tag: {await response.text()}")
            for clients in [int(c) for c in args.clients.split(",")]:
                rates = {side: [] for side in SIDES}
                sizes = {side: [] for side in SIDES}
                listings = {side: [] for side in SIDES}
                for round_ in range(args.rounds):
                    for side in SIDES[round_ % 2:] + SIDES[:round_ % 2]:
                        received, failures = [], []
                        calls_before = scheduler_listings(url)
                        latencies, elapsed = await drive(clients, args.seconds,
                                                         poller(http, path, side, received), failures)
                        calls = scheduler_listings(url) - calls_before
                        if failures:
                            raise RuntimeError(f"{name} ({side}): {len(failures)} failed polls")
                        rate, _, _, _ = summary(latencies, elapsed, 0)
                        rates[side].append(rate)
                        sizes[side].extend(received)
                        listings[side].append(calls / elapsed)
                rate = {side: statistics.mean(rates[side]) for side in SIDES}
                size = {side: statistics.mean(sizes[side]) for side in SIDES}
                listing = {side: statistics.mean(listings[side]) for side in SIDES}
                not_modified = sum(1 for n in sizes["conditional"] if n == 0) / len(sizes["conditional"])
                print(f"{name:<15} {clients:>7} {rate['plain']:>12.0f} {rate['conditional']:>12.0f} "
                      f"{rate['conditional'] / rate['plain']:>11.2f} {size['plain']:>12.0f} "
                      f"{size['conditional']:>12.0f} {size['conditional'] / size['plain']:>11.4f} "
                      f"{not_modified:>9.1%} {listing['plain']:>14.1f} {listing['conditional']:>14.1f}")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="rotations of the two sides per point")
    args, _ = parser.parse_known_args()
    env = os.environ
    repo = env["IRONCREST_DEV_REPO"]
    target = env.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    binary = os.path.join(target, "release", "ironcrest")
    with open(os.path.join(env["IRONCREST_DEV_PREFIX"], "ironcrest", "config.yaml")) as f:
        base = yaml.safe_load(f)
    token = subprocess.run([os.path.join(repo, "scripts", "dev-env"), "token"], check=True,
                           capture_output=True, text=True).stdout.strip()
    workdir = tempfile.mkdtemp(prefix="ironcrest-conditional-bench-")
    server = start(binary, base, workdir)
    try:
        await run(args, f"http://127.0.0.1:{PORT}", token)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
