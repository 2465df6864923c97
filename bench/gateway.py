"""Gateway overhead: two Ironcrest servers from the same release binary and the dev
environment's configuration, one with every gateway layer off and one with every layer on but
none reached (the IP filter allows the client, no maintenance or termination rule matches,
the token holds the scopes, the policy allows, the limits are far away). Each scenario runs
against both in the same run; the ratio is on ÷ off (1.00 = no cost). Run it with
bench/run --suite gateway (which prepares the venv).
"""

import argparse
import asyncio
import copy
import os
import signal
import subprocess
import tempfile

import aiohttp
import yaml

from ironbench import drive, start_server, summary

SYSTEM = "cluster-slurm-ssh"
SCENARIOS = {
    "status/userinfo": f"/status/{SYSTEM}/userinfo",
    "ops/stat": f"/filesystem/{SYSTEM}/ops/stat?path=/home/fireuser/ironbench/small.txt",
    "status/systems": "/status/systems",
}


def every_layer(gateway, repo):
    """The `gateway` section with every layer on, none of them refusing the benchmark."""
    gateway = copy.deepcopy(gateway or {})
    gateway["ip_filter"] = {"allow": ["127.0.0.0/8", "10.0.0.0/8"], "deny": ["192.0.2.0/24"],
                            "clients": {"some-portal": ["10.1.0.0/16"]}}
    gateway["maintenance"] = {"systems": {"another-system": {"message": "not this one"}}}
    gateway["terminate"] = [{"methods": ["POST"], "path": "/filesystem/*/ops/upload",
                             "system": "another-system", "message": "not this one"}]
    gateway["scopes"] = {family: ["firecrest"] for family in
                         ["status-read", "compute-read", "compute-write", "filesystem-read",
                          "filesystem-write", "transfer"]}
    policy = os.path.join(repo, "deploy", "policy")
    if os.path.isdir(policy):
        gateway["policy"] = {"files": [os.path.join(policy, "ironcrest.rego")],
                             "data": [os.path.join(policy, "data.yaml")]}
    gateway["limits"] = {"rates": [{"per": "user", "requests": 1_000_000, "period": 1}],
                         "concurrency": {"per_user": 10_000, "queue_timeout": 5}}
    return gateway



async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="off/on alternations per point")
    args, _ = parser.parse_known_args()
    env = os.environ
    repo = env["IRONCREST_DEV_REPO"]
    binary = os.path.join(repo, "target", "release", "ironcrest")
    with open(os.path.join(env["IRONCREST_DEV_PREFIX"], "ironcrest", "config.yaml")) as f:
        base = yaml.safe_load(f)
    base.setdefault("gateway", {})
    layered = copy.deepcopy(base)
    layered["gateway"] = every_layer(base["gateway"], repo)
    token = subprocess.run([os.path.join(repo, "scripts", "dev-env"), "token", "--scoped"], check=True,
                           capture_output=True, text=True).stdout.strip()
    workdir = tempfile.mkdtemp(prefix="ironcrest-gateway-bench-")
    servers = {"off": start_server(binary, base, 8101, workdir, "off"),
               "on": start_server(binary, layered, 8102, workdir, "on")}
    urls = {"off": "http://127.0.0.1:8101", "on": "http://127.0.0.1:8102"}
    try:
        print(f"{'operation':<16} {'clients':>7} {'off req/s':>10} {'on req/s':>10} {'on/off':>7} "
              f"{'off p99 ms':>10} {'on p99 ms':>10}")
        headers = {"Authorization": f"Bearer {token}"}
        for name, path in SCENARIOS.items():
            sessions = {side: aiohttp.ClientSession(urls[side], headers=headers,
                                                    connector=aiohttp.TCPConnector(limit=0))
                        for side in urls}
            try:
                for side, http in sessions.items():
                    async with http.get(path) as response:
                        if response.status != 200:
                            raise RuntimeError(f"{name} ({side}): HTTP {response.status}: {await response.text()}")

                for clients in [int(c) for c in args.clients.split(",")]:
                    rates = {"off": [], "on": []}
                    p99 = {"off": [], "on": []}

                    def operation(http):
                        async def call():
                            async with http.get(path) as response:
                                await response.read()
                                return response.status == 200
                        return call

                    # Alternated, and in turn first, so drift in the machine's load and what
                    # one run leaves behind on the cluster hit both sides alike.
                    for round_ in range(args.rounds):
                        for side in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
                            failures = []
                            latencies, elapsed = await drive(clients, args.seconds,
                                                             operation(sessions[side]), failures)
                            if failures:
                                raise RuntimeError(f"{name} ({side}): {len(failures)} failed requests")
                            rate, _, tail, _ = summary(latencies, elapsed, 0)
                            rates[side].append(rate)
                            p99[side].append(tail)
                    off = sum(rates["off"]) / len(rates["off"])
                    on = sum(rates["on"]) / len(rates["on"])
                    print(f"{name:<16} {clients:>7} {off:>10.0f} {on:>10.0f} {on / off:>7.3f} "
                          f"{max(p99['off']):>10.2f} {max(p99['on']):>10.2f}")
            finally:
                for http in sessions.values():
                    await http.close()
    finally:
        for process in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
