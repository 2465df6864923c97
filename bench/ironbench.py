"""Ironcrest benchmark: HTTP operations against the dev environment's Ironcrest, each beside
its floor measured in the same run — the same remote command as a raw exec on an already open
SSH connection (asyncssh, one connection, channels multiplexed), logged in with a certificate
from the same CA. Prints requests/s, p50/p99 latency and the ratio to the floor, plus the
server's RSS. Run it with bench/run (which prepares a venv and the test files).

With --compare-v2 URL, the same requests also go to a FirecREST v2 (bench/firecrest-v2 runs
one in front of the same services) between the Ironcrest run and the floor, and two more
columns give v2's requests/s and Ironcrest's ÷ v2's (see bench/README.md).
"""

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

import aiohttp
import asyncssh
import yaml

SYSTEM = "cluster-slurm-ssh"
BENCH_DIR = "/home/fireuser/ironbench"
TIME_STYLE = "+%Y-%m-%dT%H:%M:%S"
# bench/run fills BENCH_DIR/ls-N with N small files for the "ops/ls N" scenarios.
LISTING_SIZES = (10, 300, 10000)


def listing(timeout, d):
    return (f"/filesystem/{SYSTEM}/ops/ls?path={d}&showHidden=false&recursive=false&numericUid=false&dereference=false",
            f"LC_ALL=C timeout {timeout} ls -l --quoting-style=c --time-style='{TIME_STYLE}' -- {d}", 0)


def scenarios(timeout):
    """name → (HTTP path, equivalent remote command or None, what one operation moves in bytes)."""
    t = f"LC_ALL=C timeout {timeout}"
    d, f, big = BENCH_DIR, f"{BENCH_DIR}/small.txt", f"{BENCH_DIR}/one-mib.bin"
    bigger = f"{BENCH_DIR}/four-mib.bin"
    return {
        "ops/ls": listing(timeout, d),
        **{f"ops/ls {n}": listing(timeout, f"{d}/ls-{n}") for n in LISTING_SIZES},
        "ops/stat": (f"/filesystem/{SYSTEM}/ops/stat?path={f}&dereference=false",
                     f"{t} stat -c '%f %i %d %h %u %g %s %X %Y %Z' -- {f}", 0),
        "ops/head": (f"/filesystem/{SYSTEM}/ops/head?path={f}&skipTrailing=false",
                     f"{t} head -- {f}", 0),
        "ops/download 1 MiB": (f"/filesystem/{SYSTEM}/ops/download?path={big}",
                               f"{t} cat -- {big}", 1 << 20),
        # Beside the 1 MiB one, for server RSS across file sizes (under the dev
        # environment's 5 MiB max_ops_file_size).
        "ops/download 4 MiB": (f"/filesystem/{SYSTEM}/ops/download?path={bigger}",
                               f"{t} cat -- {bigger}", 4 << 20),
        # Served from memory: no remote command, so no floor.
        "status/systems": ("/status/systems", None, 0),
        "status/userinfo": (f"/status/{SYSTEM}/userinfo",
                            "LC_ALL=C id && LC_ALL=C sacctmgr --noheader --parsable2 show user name=fireuser "
                            "withassoc format=DefaultAccount,Account", 0),
    }


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def check_answer(name, body):
    """Raises unless a scenario's answer is what the benchmark expects (checked once per server)."""
    for n in LISTING_SIZES:
        if name == f"ops/ls {n}":
            entries = len(json.loads(body)["output"])
            if entries != n:
                raise RuntimeError(f"{name}: the listing has {entries} entries, not {n} (run it with bench/run)")



def start_server(binary, config, port, workdir, name):
    """Starts `binary serve` with `config` listening on 127.0.0.1:`port` (its config and log in
    `workdir`, named after `name`) and returns the process once it answers its liveness route."""
    config = copy.deepcopy(config)
    config["server"]["listen"] = f"127.0.0.1:{port}"
    stem = os.path.join(workdir, "".join(c for c in name if c.isalnum() or c in "-_"))
    with open(f"{stem}.yaml", "w") as f:
        yaml.safe_dump(config, f)
    log = open(f"{stem}.log", "w")
    process = subprocess.Popen([binary, "serve", "--config", f"{stem}.yaml"], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status/liveness/", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the {name} server never answered; see {log.name}")


async def drive(clients, seconds, operation, failures=None):
    """Runs `operation` from `clients` concurrent workers for `seconds`; returns latencies.
    An operation that returns False failed: it is counted in `failures` (a list, one entry per
    failure), not in the latencies."""
    latencies = []
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            start = time.monotonic()
            if await operation() is False and failures is not None:
                failures.append(1)
            else:
                latencies.append(time.monotonic() - start)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.monotonic() - started


def summary(latencies, elapsed, size):
    if not latencies:
        return 0.0, float("nan"), float("nan"), 0.0 if size else None
    ordered = sorted(latencies)
    rate = len(ordered) / elapsed
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    mbps = rate * size / 1e6 if size else None
    return rate, p50, p99, mbps


async def open_ssh(env):
    """One SSH connection as fireuser, with a throwaway key certified by the dev CA."""
    keydir = tempfile.mkdtemp(prefix="ironbench-")
    key = os.path.join(keydir, "key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", env["IRONCREST_DEV_SSH_CA_KEY"], "-I", "ironbench",
                    "-n", "fireuser", "-V", "+30m", key + ".pub"], check=True)
    ssh = await asyncssh.connect(env["IRONCREST_DEV_SSH_HOST"], int(env["IRONCREST_DEV_SSH_PORT"]),
                                 username="fireuser", known_hosts=env["IRONCREST_DEV_SSH_KNOWN_HOSTS"],
                                 client_keys=[(asyncssh.read_private_key(key), asyncssh.read_certificate(key + "-cert.pub"))])
    for name in os.listdir(keydir):
        os.unlink(os.path.join(keydir, name))
    os.rmdir(keydir)
    return ssh


def fmt(value, width, digits):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--pid", type=int, required=True, help="Ironcrest's pid, for RSS")
    parser.add_argument("--url", default=os.environ.get("IRONCREST_DEV_URL"),
                        help="Ironcrest's base URL (default: the dev environment's; RSS is still --pid's)")
    parser.add_argument("--compare-v2", metavar="URL", default=None,
                        help="also measure a FirecREST v2 at URL (bench/firecrest-v2 up), in the same run")
    parser.add_argument("--v2-pid", type=int, default=None, help="that FirecREST v2's pid, for RSS")
    parser.add_argument("--suite", choices=["filesystem", "compute"], default="filesystem")
    args = parser.parse_args()
    env = os.environ
    token = subprocess.run([env["IRONCREST_DEV_REPO"] + "/scripts/dev-env", "token"], check=True,
                           capture_output=True, text=True).stdout.strip()
    if args.suite == "compute":
        if args.compare_v2:
            parser.error("--compare-v2 is for the filesystem suite only")
        from compute_bench import run
        await run(args, token, env)
        return

    known = scenarios(10)
    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in selected if s not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(known)}")
    ssh = await open_ssh(env)

    compare = args.compare_v2 is not None
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=60)
    if compare:
        print(f"{'operation':<20} {'clients':>7} {'ironcrest req/s':>15} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'v2 req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'× v2':>7} "
              f"{'floor req/s':>11} {'p50 ms':>8} {'ratio':>6} {'MB/s (floor)':>16} {'RSS KiB':>8} {'v2 RSS KiB':>10}")
    else:
        print(f"{'operation':<20} {'clients':>7} {'ironcrest req/s':>15} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'floor req/s':>11} {'p50 ms':>8} {'ratio':>6} {'MB/s (floor)':>16} {'RSS KiB':>8}")
    sessions = {"ironcrest": aiohttp.ClientSession(args.url.rstrip("/"), headers=headers, timeout=timeout,
                                                   connector=aiohttp.TCPConnector(limit=0))}
    if compare:
        sessions["v2"] = aiohttp.ClientSession(args.compare_v2.rstrip("/"), headers=headers, timeout=timeout,
                                               connector=aiohttp.TCPConnector(limit=0))
    try:
        for name, (path, command, size) in known.items():
            if selected and name not in selected:
                continue

            def over_http(http, failures_seen):
                async def operation():
                    try:
                        async with http.get(path) as response:
                            body = await response.read()
                            if response.status == 200:
                                return True
                            kind = f"HTTP {response.status}: {body[:200]!r}"
                    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                        kind = f"{type(error).__name__}: {error}"
                    if len(failures_seen) < 3:
                        failures_seen.setdefault(kind, 0)
                    return False
                return operation

            async def over_ssh():
                result = await ssh.run(command, check=True, encoding=None)
                if size and len(result.stdout) != size:
                    raise RuntimeError(f"{name}: short read")

            # One checked request per server first: it also opens the server's SSH connection.
            for server, http in sessions.items():
                async with http.get(path) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{name} on {server}: HTTP {response.status}: {body[:500]!r}")
                    check_answer(name, body)

            for clients in [int(c) for c in args.clients.split(",")]:
                kinds, failed = {}, {}
                results = {}
                for server, http in sessions.items():
                    failures, kinds[server] = [], {}
                    results[server] = summary(*await drive(clients, args.seconds,
                                                           over_http(http, kinds[server]), failures), size)
                    failed[server] = len(failures)
                    if server == "ironcrest":
                        rss = rss_kib(args.pid)
                    elif args.v2_pid:
                        v2_rss = rss_kib(args.v2_pid)
                api = results["ironcrest"]
                floor = summary(*await drive(clients, args.seconds, over_ssh), size) if command else None
                throughput = f"{api[3]:.0f} ({floor[3]:.0f})" if size and floor else ""
                line = f"{name:<20} {clients:>7} {api[0]:>15.1f} {api[1]:>8.2f} {api[2]:>8.2f} "
                if compare:
                    v2 = results["v2"]
                    times = api[0] / v2[0] if v2[0] else None
                    line += f"{v2[0]:>9.1f} {v2[1]:>8.2f} {v2[2]:>8.2f} {fmt(times, 7, 2)} "
                line += (f"{fmt(floor and floor[0], 11, 1)} {fmt(floor and floor[1], 8, 2)} "
                         f"{fmt(floor and api[0] / floor[0], 6, 2)} {throughput:>16} {rss:>8}")
                if compare:
                    line += f" {v2_rss if args.v2_pid else '-':>10}"
                print(line, flush=True)
                for server in sessions:
                    if failed[server]:
                        print(f"  ! {server}: {failed[server]} failed requests, e.g. {' | '.join(kinds[server])}",
                              flush=True)
    finally:
        for http in sessions.values():
            await http.close()
        ssh.close()

if __name__ == "__main__":
    asyncio.run(main())
