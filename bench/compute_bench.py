"""Compute benchmark: job listing and lookup through Ironcrest with the jobs cache on (the dev
configuration) and off (a second Ironcrest started here with `jobs_cache_max_age: 0`), beside
two floors measured in the same run: the same squeue + sacct commands as raw execs on one open
SSH connection, and raw slurmrestd. Then the submit rate of tiny jobs through Ironcrest beside
raw sbatch over the open SSH connection. Run it with `bench/run --suite compute`.
"""

import asyncio
import os
import subprocess
import tempfile
import time

import aiohttp

from ironbench import drive, open_ssh, summary

SYSTEM = "cluster-slurm-ssh"
SQUEUE = ("LC_ALL=C SLURM_TIME_FORMAT='%s' squeue --states=all --user=fireuser --noheader "
          "--Format='JobID:|,NumNodes:|,Cluster:||,GroupName:|,Account:|,Name:|,NodeList:|,Partition:|,"
          "PriorityLong:|,State:|,Reason:|,TimeUsed:|,SubmitTime:|,StartTime:|,EndTime:||,TimeLimit:|,"
          "UserName:|,WorkDir:'")
SACCT = ("LC_ALL=C SLURM_TIME_FORMAT='%s' sacct --starttime=now-24hours --parsable2 --noheader "
         "--format='JobID,AllocNodes,Cluster,ExitCode,Group,Account,JobName,NodeList,Partition,Priority,"
         "State,Reason,ElapsedRaw,Submit,Start,End,Suspended,TimelimitRaw,User,WorkDir'")
TINY_JOB = "#!/bin/bash\n#SBATCH --time=1\ntrue\n"


async def start_uncached_server(env):
    """A second Ironcrest like the dev one, with the jobs cache off, on a free port."""
    config = open(f"{env['IRONCREST_DEV_PREFIX']}/ironcrest/config.yaml").read()
    port = 18000 + os.getpid() % 1000
    config = config.replace(f"127.0.0.1:{env['IRONCREST_DEV_PORT']}", f"127.0.0.1:{port}")
    config = config.replace("      connection_mode: ssh", "      connection_mode: ssh\n      jobs_cache_max_age: 0")
    path = tempfile.mktemp(suffix=".yaml")
    open(path, "w").write(config)
    process = subprocess.Popen([f"{env['IRONCREST_DEV_REPO']}/target/release/ironcrest", "serve", "--config", path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the uncached Ironcrest did not start")


def row(name, clients, result):
    rate, p50, p99, _ = result
    print(f"{name:<44} {clients:>7} {rate:>10.1f} {p50:>9.2f} {p99:>9.2f}")


async def run(args, token, env):
    ssh = await open_ssh(env)
    # sshd's MaxSessions (100 in the dev environment) bounds channels on one connection.
    channels = asyncio.Semaphore(90)

    async def remote(command, **kwargs):
        async with channels:
            return await ssh.run(command, check=True, **kwargs)

    headers = {"Authorization": f"Bearer {token}"}
    rest_headers = {"X-SLURM-USER-NAME": "fireuser", "X-SLURM-USER-TOKEN": token}
    uncached, uncached_url = await start_uncached_server(env)
    try:
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as http:
            submitted = await http.post(f"{env['IRONCREST_DEV_URL']}/compute/{SYSTEM}/jobs",
                                        json={"job": {"working_directory": "/home/fireuser", "script": TINY_JOB}})
            job_id = (await submitted.json())["jobId"]

            async def get(url, extra=None):
                async with http.get(url, headers=extra) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")

            async def raw_listing():
                await asyncio.gather(remote(SQUEUE), remote(SACCT))

            async def raw_lookup():
                await asyncio.gather(remote(SQUEUE.replace("--user=fireuser", f"--jobs={job_id}")),
                                     remote(SACCT.replace("--starttime=now-24hours", f"--allusers --jobs={job_id}")))

            cases = [
                ("GET jobs, cache on", lambda: get(f"{env['IRONCREST_DEV_URL']}/compute/{SYSTEM}/jobs")),
                ("GET jobs, cache off", lambda: get(f"{uncached_url}/compute/{SYSTEM}/jobs")),
                ("floor: squeue + sacct raw exec", raw_listing),
                ("floor: raw slurmrestd GET /slurm/v0.0.38/jobs",
                 lambda: get(f"{env['IRONCREST_DEV_SLURMRESTD_URL']}/slurm/v0.0.38/jobs", rest_headers)),
                (f"GET jobs/{{id}}, cache on", lambda: get(f"{env['IRONCREST_DEV_URL']}/compute/{SYSTEM}/jobs/{job_id}")),
                (f"GET jobs/{{id}}, cache off", lambda: get(f"{uncached_url}/compute/{SYSTEM}/jobs/{job_id}")),
                ("floor: squeue -j + sacct -j raw exec", raw_lookup),
            ]
            print(f"{'compute operation':<44} {'clients':>7} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
            for clients in [int(c) for c in args.clients.split(",")]:
                for name, operation in cases:
                    row(name, clients, summary(*await drive(clients, args.seconds, operation), 0))

            n_jobs, concurrency = 200, 16
            queue = asyncio.Queue()

            async def submit_all(submit_one):
                for _ in range(n_jobs):
                    queue.put_nowait(None)

                async def worker():
                    while not queue.empty():
                        queue.get_nowait()
                        await submit_one()

                started = time.monotonic()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                return n_jobs / (time.monotonic() - started)

            async def api_submit():
                async with http.post(f"{env['IRONCREST_DEV_URL']}/compute/{SYSTEM}/jobs",
                                     json={"job": {"working_directory": "/home/fireuser", "script": TINY_JOB}}) as response:
                    if response.status != 201:
                        raise RuntimeError(f"submit: HTTP {response.status}: {await response.text()}")

            async def raw_submit():
                await remote("LC_ALL=C sbatch --export=ALL --chdir=/home/fireuser", input=TINY_JOB)

            api_rate = await submit_all(api_submit)
            raw_rate = await submit_all(raw_submit)
            print(f"submit {n_jobs} tiny jobs, {concurrency} at a time: Ironcrest {api_rate:.1f} jobs/s, "
                  f"raw sbatch {raw_rate:.1f} jobs/s, ratio {api_rate / raw_rate:.2f}")
            await ssh.run("LC_ALL=C scancel --user=fireuser", check=False)
    finally:
        uncached.terminate()
        uncached.wait()
        ssh.close()
