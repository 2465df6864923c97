"""Per-user concurrency limit benchmark: does a noisy user hurt a quiet one? Two users of the
dev IdP — the noisy one (fireuser, client ironcrest-dev) with --noisy clients issuing
checksums (an exec on the cluster each), the quiet one (firesrv, client ironcrest-health) with
one client listing its home — against an Ironcrest started by bench/limits with its own
configuration file. Measures the quiet user's latency alone and beside the noisy one, first
without limits, then (after rewriting the file's `gateway` section and a SIGHUP) with
`gateway.limits.concurrency.per_user` = --per-user. Run it with bench/limits.
"""

import argparse
import asyncio
import base64
import os
import signal
import time
import warnings

import aiohttp

# ironbench imports asyncssh, whose import warns about DSA; not ours to fix.
warnings.filterwarnings("ignore", module="asyncssh")
from ironbench import drive, summary  # noqa: E402

SYSTEM = "cluster-slurm-ssh"


async def token(http, client_id, secret):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    async with http.post(os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"], headers={"Authorization": f"Basic {basic}"},
                         data={"grant_type": "client_credentials"}) as response:
        response.raise_for_status()
        return (await response.json())["access_token"]


def operation(http, path, counts):
    async def run():
        try:
            async with http.get(path) as response:
                await response.read()
                counts[response.status] = counts.get(response.status, 0) + 1
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
            return False
    return run


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's pid, for SIGHUP")
    parser.add_argument("--config", required=True, help="the server's configuration file")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--noisy", type=int, default=64)
    parser.add_argument("--per-user", type=int, default=4)
    parser.add_argument("--queue-timeout", type=float, default=30)
    args = parser.parse_args()
    env = os.environ
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as idp:
        noisy_token = await token(idp, env["IRONCREST_DEV_CLIENT_ID"], env["IRONCREST_DEV_CLIENT_SECRET"])
        quiet_token = await token(idp, env["IRONCREST_DEV_SERVICE_CLIENT_ID"],
                                  env["IRONCREST_DEV_SERVICE_CLIENT_SECRET"])
    noisy_path = f"/filesystem/{SYSTEM}/ops/checksum?path=/home/fireuser/ironbench/small.txt"
    quiet_path = f"/filesystem/{SYSTEM}/ops/ls?path=/home/firesrv"

    def session(bearer):
        return aiohttp.ClientSession(args.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=0))

    with open(args.config) as f:
        base = f.read()
    noisy, quiet = session(noisy_token), session(quiet_token)
    print(f"{'limits':<26} {'noisy clients':>13} {'quiet req/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'noisy req/s':>11} {'p99 ms':>8}  other answers")
    try:
        for limited in (False, True):
            if limited:
                with open(args.config, "w") as f:
                    f.write(base + f"gateway:\n  limits:\n    concurrency: {{per_user: {args.per_user}, "
                                   f"queue_timeout: {args.queue_timeout}}}\n")
                os.kill(args.pid, signal.SIGHUP)
                time.sleep(1)
            label = f"per_user: {args.per_user}" if limited else "none"
            # Warm both users' SSH connections, unmeasured.
            for http, path in ((noisy, noisy_path), (quiet, quiet_path)):
                async with http.get(path) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{path}: HTTP {response.status}: {(await response.read())[:300]!r}")
            for clients in (0, args.noisy):
                quiet_counts, noisy_counts = {}, {}
                runs = [drive(1, args.seconds, operation(quiet, quiet_path, quiet_counts))]
                if clients:
                    runs.append(drive(clients, args.seconds, operation(noisy, noisy_path, noisy_counts)))
                results = await asyncio.gather(*runs)
                q = summary(*results[0], 0)
                n = summary(*results[1], 0) if clients else None
                other = {f"quiet {k}": v for k, v in quiet_counts.items() if k != 200}
                other.update({f"noisy {k}": v for k, v in noisy_counts.items() if k != 200})
                noisy_cols = f"{n[0]:>11.1f} {n[2]:>8.2f}" if n else f"{'-':>11} {'-':>8}"
                print(f"{label:<26} {clients:>13} {q[0]:>11.1f} {q[1]:>8.2f} {q[2]:>8.2f} {noisy_cols}  "
                      f"{other or ''}", flush=True)
    finally:
        with open(args.config, "w") as f:
            f.write(base)
        await noisy.close()
        await quiet.close()


if __name__ == "__main__":
    asyncio.run(main())
