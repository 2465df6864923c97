"""Ironcrest benchmark: HTTP operations against the dev environment's Ironcrest, each beside
its floor measured in the same run — the same remote command as a raw exec on an already open
SSH connection (asyncssh, one connection, channels multiplexed), logged in with a certificate
from the same CA. Prints requests/s, p50/p99 latency and the ratio to the floor, plus the
server's RSS. Run it with bench/run (which prepares a venv and the test files).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time

import aiohttp
import asyncssh

SYSTEM = "cluster-slurm-ssh"
BENCH_DIR = "/home/fireuser/ironbench"
TIME_STYLE = "+%Y-%m-%dT%H:%M:%S"


def scenarios(timeout):
    """name → (HTTP path, equivalent remote command, what one operation moves in bytes)."""
    t = f"LC_ALL=C timeout {timeout}"
    d, f, big = BENCH_DIR, f"{BENCH_DIR}/small.txt", f"{BENCH_DIR}/one-mib.bin"
    bigger = f"{BENCH_DIR}/four-mib.bin"
    return {
        "ops/ls": (f"/filesystem/{SYSTEM}/ops/ls?path={d}&showHidden=false&recursive=false&numericUid=false&dereference=false",
                   f"{t} ls -l --quoting-style=c --time-style='{TIME_STYLE}' -- {d}", 0),
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


async def drive(clients, seconds, operation):
    """Runs `operation` from `clients` concurrent workers for `seconds`; returns latencies."""
    latencies = []
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            start = time.monotonic()
            await operation()
            latencies.append(time.monotonic() - start)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.monotonic() - started


def summary(latencies, elapsed, size):
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


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--pid", type=int, required=True, help="Ironcrest's pid, for RSS")
    parser.add_argument("--suite", choices=["filesystem", "compute"], default="filesystem")
    args = parser.parse_args()
    env = os.environ
    token = subprocess.run([env["IRONCREST_DEV_REPO"] + "/scripts/dev-env", "token"], check=True,
                           capture_output=True, text=True).stdout.strip()
    if args.suite == "compute":
        from compute_bench import run
        await run(args, token, env)
        return
    ssh = await open_ssh(env)

    selected = [s for s in args.only.split(",") if s]
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    print(f"{'operation':<20} {'clients':>7} {'ironcrest req/s':>15} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'floor req/s':>11} {'p50 ms':>8} {'ratio':>6} {'MB/s (floor)':>16} {'RSS KiB':>8}")
    async with aiohttp.ClientSession(env["IRONCREST_DEV_URL"], headers=headers, connector=connector) as http:
        for name, (path, command, size) in scenarios(10).items():
            if selected and name not in selected:
                continue

            async def over_http():
                async with http.get(path) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{name}: HTTP {response.status}: {await response.text()}")

            async def over_ssh():
                result = await ssh.run(command, check=True, encoding=None)
                if size and len(result.stdout) != size:
                    raise RuntimeError(f"{name}: short read")

            for clients in [int(c) for c in args.clients.split(",")]:
                api = summary(*await drive(clients, args.seconds, over_http), size)
                rss = rss_kib(args.pid)
                floor = summary(*await drive(clients, args.seconds, over_ssh), size)
                throughput = f"{api[3]:.0f} ({floor[3]:.0f})" if size else ""
                print(f"{name:<20} {clients:>7} {api[0]:>15.1f} {api[1]:>8.2f} {api[2]:>8.2f} "
                      f"{floor[0]:>11.1f} {floor[1]:>8.2f} {api[0] / floor[0]:>6.2f} {throughput:>16} {rss:>8}")
    ssh.close()


if __name__ == "__main__":
    asyncio.run(main())
