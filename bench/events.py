"""Job events: what 1, 100 and 1,000 open event streams over 50 users cost the scheduler and
Ironcrest, while a few jobs change state. One Ironcrest is started here from this tree's release
binary with the dev environment's configuration (streams allowed for the benchmark: 64 per user,
no per-address connection cap), on 127.0.0.1:8131.

The 50 users' tokens are signed here with the dev IdP's key (as the integration tests do): the
streams are fed by the poller, which lists the jobs as the service account, so their users need
no account on the cluster. fireuser is one of them, and its jobs (one submitted every few
seconds into the reservation, each running a second) make the events.

For each stream count: open the streams round-robin over the users, wait until each has its
`ready` event, then measure for --seconds: the scheduler calls (`cluster_jobs`: the listing,
`ended_jobs`: the accounting lookups) and every SSH command Ironcrest opened, per second, from
the server's /metrics; Ironcrest's CPU (utime + stime over the wall time, one core = 100 %) and
RSS (VmRSS after the window); RSS per stream against the RSS with no stream open. A first
window with no stream shows the idle cost (no poller: no calls). Run it with
bench/run --suite events (which builds the release binary).
"""

import argparse
import asyncio
import copy
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

import aiohttp
import yaml

from ironbench import rss_kib, start_server

SYSTEM = "cluster-slurm-ssh"
PORT = 8131
USERS = ["fireuser"] + [f"bench-user-{i:02d}" for i in range(1, 50)]


def sign_tokens(env, users):
    """RS256 tokens for `users`, signed with the dev IdP's persisted key (node's crypto)."""
    script = r"""
const c = require('crypto'), fs = require('fs');
const [jwks, issuer, audience, users] = process.argv.slice(1);
const key = JSON.parse(fs.readFileSync(jwks, 'utf8')).keys[0];
const pem = c.createPrivateKey({key, format: 'jwk'});
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const tokens = JSON.parse(users).map((user) => {
  const head = b64({alg: 'RS256', typ: 'JWT', kid: key.kid});
  const body = b64({iss: issuer, aud: audience, sub: user, preferred_username: user, username: user,
                    iat: now, exp: now + 3600});
  const signature = c.sign('RSA-SHA256', Buffer.from(`${head}.${body}`), pem).toString('base64url');
  return `${head}.${body}.${signature}`;
});
process.stdout.write(JSON.stringify(tokens));
"""
    jwks = os.path.join(env["IRONCREST_DEV_PREFIX"], "oidc", "private", "jwks.json")
    out = subprocess.run(["node", "-e", script, jwks, env["IRONCREST_DEV_OIDC_ISSUER"],
                          env["IRONCREST_DEV_OIDC_AUDIENCE"], json.dumps(users)],
                         check=True, capture_output=True, text=True).stdout
    return dict(zip(users, json.loads(out)))


def metrics(url):
    """(listings, accounting lookups, SSH commands) so far, from /metrics."""
    page = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()

    def total(name, label=None):
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith(name + "{") and (label is None or re.search(label, line)))
    return (total("ironcrest_scheduler_calls_total", r'call="cluster_jobs"'),
            total("ironcrest_scheduler_calls_total", r'call="ended_jobs"'),
            total("ironcrest_ssh_exec_channels_opened_total"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stream:
    """One event stream, read to the end in a task; counts its events."""

    def __init__(self, http, token):
        self.http, self.token = http, token
        self.ready = asyncio.Event()
        self.events = 0
        self.task = asyncio.create_task(self.read())

    async def read(self):
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.get(f"/compute/{SYSTEM}/jobs/events", headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"stream: HTTP {response.status}: {await response.text()}")
            async for line in response.content:
                if line.startswith(b"event: ready"):
                    self.ready.set()
                elif line.startswith(b"event: job"):
                    self.events += 1


async def churn(http, token, stop, env, every):
    """Submits a one-second job for fireuser every `every` seconds until `stop` is set."""
    job = {"workingDirectory": "/home/fireuser", "name": "bench-events", "standardOutput": "/dev/null",
           "script": "#!/bin/bash\nsleep 1\n", "reservation": env["IRONCREST_DEV_SLURM_RESERVATION"]}
    submitted = 0
    while not stop.is_set():
        async with http.post(f"/compute/{SYSTEM}/jobs", json={"job": job},
                             headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status != 201:
                raise RuntimeError(f"submit: HTTP {response.status}: {await response.text()}")
            submitted += 1
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass
    return submitted


async def measure(url, pid, seconds):
    calls, cpu, start = metrics(url), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    after, cpu_after, elapsed = metrics(url), cpu_seconds(pid), time.monotonic() - start
    listings, accounting, commands = ((b - a) / elapsed for a, b in zip(calls, after))
    return listings, accounting, commands, 100 * (cpu_after - cpu) / elapsed, rss_kib(pid)


async def run(args, url, pid, tokens, env):
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    print(f"{'streams':>7} {'users':>5} {'listings/s':>10} {'sacct/s':>8} {'SSH cmds/s':>10} "
          f"{'CPU %':>6} {'RSS KiB':>8} {'KiB/stream':>10} {'events':>7} {'jobs':>5}")
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        # Idle: no stream, no poller. Then the RSS every stream count is compared with.
        listings, accounting, commands, cpu, idle_rss = await measure(url, pid, args.seconds)
        print(f"{0:>7} {0:>5} {listings:>10.2f} {accounting:>8.2f} {commands:>10.2f} {cpu:>6.1f} "
              f"{idle_rss:>8} {'-':>10} {'-':>7} {'-':>5}", flush=True)
        users = list(tokens)
        for count in [int(n) for n in args.streams.split(",")]:
            streams = [Stream(http, tokens[users[i % len(users)]]) for i in range(count)]
            waiting = asyncio.gather(*(s.ready.wait() for s in streams))
            done, _ = await asyncio.wait([asyncio.ensure_future(waiting)] + [s.task for s in streams],
                                         timeout=120, return_when=asyncio.FIRST_COMPLETED)
            for stream in streams:
                if stream.task.done():
                    stream.task.result()
            if not all(s.ready.is_set() for s in streams):
                raise RuntimeError(f"{count} streams: not all ready within 120 s")
            stop = asyncio.Event()
            jobs = asyncio.create_task(churn(http, tokens["fireuser"], stop, env, args.job_every))
            listings, accounting, commands, cpu, rss = await measure(url, pid, args.seconds)
            stop.set()
            submitted = await jobs
            events = sum(s.events for s in streams)
            per_stream = (rss - idle_rss) / count
            print(f"{count:>7} {min(count, len(users)):>5} {listings:>10.2f} {accounting:>8.2f} "
                  f"{commands:>10.2f} {cpu:>6.1f} {rss:>8} {per_stream:>10.1f} {events:>7} {submitted:>5}",
                  flush=True)
            for stream in streams:
                stream.task.cancel()
            await asyncio.gather(*(s.task for s in streams), return_exceptions=True)
            # Let the server see the streams go (and the poller keep running: linger).
            await asyncio.sleep(2)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="1,100,1000")
    parser.add_argument("--seconds", type=float, default=20, help="each measuring window")
    parser.add_argument("--poll-interval", type=int, default=2)
    parser.add_argument("--job-every", type=float, default=4, help="seconds between two submitted jobs")
    parser.add_argument("--binary", default=None, help="the ironcrest to start (default: the release build)")
    args, _ = parser.parse_known_args()
    env = os.environ
    repo = env["IRONCREST_DEV_REPO"]
    target = env.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    binary = args.binary or os.path.join(target, "release", "ironcrest")
    with open(os.path.join(env["IRONCREST_DEV_PREFIX"], "ironcrest", "config.yaml")) as f:
        base = yaml.safe_load(f)
    config = copy.deepcopy(base)
    config["audit"] = {"enabled": False}
    config.setdefault("telemetry", {})["metrics"] = {"enabled": True}
    connections = config.setdefault("server", {}).setdefault("connections", {})
    connections["max_connections_per_address"] = 0
    config["job_events"] = {"poll_interval": args.poll_interval, "max_streams_per_user": 64,
                            "max_streams": 5000}
    tokens = sign_tokens(env, USERS)
    workdir = tempfile.mkdtemp(prefix="ironcrest-events-bench-")
    server = start_server(binary, config, PORT, workdir, "events")
    try:
        await run(args, f"http://127.0.0.1:{PORT}", server.pid, tokens, env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
