"""Ironcrest transfer benchmark: a staged (S3) upload and download of one file, end to end,
each beside floors measured in the same run against the same S3 (the dev environment's moto)
with plain clients, plus Ironcrest's RSS before, at peak during and after each staged transfer.
Run it with `bench/run --suite transfer [--size-mib 256] [--repeat N]`.

Floors:
  single-hop  the bytes moved once between this client and S3: a multipart PUT of the file
              (same part size and concurrency as the staged upload) / one plain GET of it.
  two-hop     the same S3 requests a staged transfer makes, by plain clients back to back:
              a multipart PUT of the file in the part size Ironcrest hands out (and its
              completion), then a GET of the object (a `curl` into the target on this
              machine for upload, the client's GET for download). A staged transfer moves
              every byte twice through S3, so this is the floor it can approach; on moto,
              completing a multipart upload copies the whole object, which both pay.
  no-op job   a batch job that does nothing (`sbatch --wrap true` in the transfer partition, as
              fireuser), from submission until squeue says COMPLETED, polled as often as the
              staged transfers' jobs are: what running work as a batch job costs on this Slurm
              (its scheduling tick, the launch, the end) before any byte moves. A staged download
              runs strictly in sequence (job, then the client's GET), so "2-hop+job" is the
              floor it can approach; an upload's job waits in the queue while the client PUTs,
              so that column is not given for uploads.
MB/s is 10^6 bytes per second of wall time; ratio is Ironcrest / floor. sha256 checks run
after the clock stops, so no column pays for hashing.
"""

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import aiohttp

from ironbench import rss_kib

SYSTEM = "cluster-slurm-ssh"
BENCH_DIR = "/home/fireuser/ironbench"
MIB = 1 << 20
# pyfirecrest's async client puts the parts of a staged upload 10 at a time.
CONCURRENCY = 10
FLOOR_BUCKET = "ironbench-floor"
# moto does not check signatures, but it refuses some requests with no Authorization header
# at all (an anonymous GET of a private object is a 403), so the floor requests carry a
# syntactically valid one with a dummy signature instead of presigning.
FAKE_AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
                              "SignedHeaders=host, Signature=00"}
POLL = 0.2  # seconds between job state requests
# The dev environment's transfer partition (`datatransfer_jobs_directives`).
TRANSFER_PARTITION = "normal"
SETTLE = 8  # seconds between a staged transfer's job and the no-op job, both ways
TOKEN_REUSE = 60  # seconds


class RssSampler:
    """Ironcrest's VmRSS before, peak while running (every 100 ms) and after."""

    def __init__(self, pid):
        self.pid = pid

    async def __aenter__(self):
        self.before = self.peak = rss_kib(self.pid)
        self.task = asyncio.create_task(self._sample())
        return self

    async def _sample(self):
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc):
        self.task.cancel()
        self.after = rss_kib(self.pid)
        self.peak = max(self.peak, self.after)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def check(path, expected, what):
    got = sha256_file(path)
    if got != expected:
        raise RuntimeError(f"{what}: sha256 of {path} is {got}, expected {expected}")


def read_part(path, index, part_size):
    with open(path, "rb") as f:
        f.seek(index * part_size)
        return f.read(part_size)


async def put_parts(s3, path, urls, part_size, headers=None):
    """PUTs part i of `path` to urls[i], CONCURRENCY at a time (each part is read only when
    its turn comes, as pyfirecrest does); returns the CompleteMultipartUpload body."""
    limit = asyncio.Semaphore(CONCURRENCY)
    etags = [None] * len(urls)

    async def one(index, url):
        async with limit:
            body = await asyncio.to_thread(read_part, path, index, part_size)
            async with s3.put(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"part {index + 1}: HTTP {response.status}")
                etags[index] = response.headers["ETag"]

    await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
    parts = "".join(f"<Part><ETag>{etag}</ETag><PartNumber>{i + 1}</PartNumber></Part>"
                    for i, etag in enumerate(etags))
    return ("<?xml version='1.0' encoding='utf-8'?>\n<CompleteMultipartUpload "
            f"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{parts}</CompleteMultipartUpload>")


async def get_to_file(s3, url, path, headers=None):
    """Streams a GET into `path` (never the whole object in memory)."""
    async with s3.get(url, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status}")
        with open(path, "wb") as f:
            async for chunk in response.content.iter_chunked(MIB):
                f.write(chunk)


async def run_as_fireuser(*command):
    process = await asyncio.create_subprocess_exec("runuser", "-u", "fireuser", "--", *command,
                                                   stdout=subprocess.PIPE, cwd="/tmp")
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {process.returncode}")
    return out.decode().strip()


class Bench:
    def __init__(self, env, pid, size, workdir):
        self.env, self.pid, self.size, self.workdir = env, pid, size, workdir
        self.s3_url = env["IRONCREST_DEV_S3_URL"]
        self._token = None

    def token(self):
        # Reused for a minute, as a client caches its token (fetching one costs ~80 ms, which
        # would otherwise land in every job poll), and renewed well before it expires.
        now = time.monotonic()
        if self._token is None or now - self._token[1] > TOKEN_REUSE:
            token = subprocess.run([self.env["IRONCREST_DEV_REPO"] + "/scripts/dev-env", "token"],
                                   check=True, capture_output=True, text=True).stdout.strip()
            self._token = (token, now)
        return self._token[0]

    async def api(self, method, path, **kwargs):
        headers = {"Authorization": f"Bearer {self.token()}"}
        async with self.http.request(method, self.env["IRONCREST_DEV_URL"] + path,
                                     headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def wait_job(self, job):
        """Polls the job's state until it ends; the job's logs are removed afterwards."""
        path = f"/compute/{SYSTEM}/jobs/{job['jobId']}"
        try:
            while True:
                status, body = await self.api("GET", path)
                if status == 200 and body.get("jobs"):
                    state = body["jobs"][0]["status"]["state"]
                    if state == "COMPLETED":
                        return
                    if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                        logs = "".join(open(job["logs"][k]).read() for k in ("outputLog", "errorLog")
                                       if os.path.exists(job["logs"][k]))
                        raise RuntimeError(f"transfer job {job['jobId']} ended {state}:\n{logs}")
                await asyncio.sleep(POLL)
        finally:
            for key in ("outputLog", "errorLog"):
                try:
                    os.unlink(job["logs"][key])
                except OSError:
                    pass

    # -- Ironcrest --------------------------------------------------------------------------

    async def staged_upload(self, local, digest):
        target = f"{BENCH_DIR}/transfer-upload.bin"
        async with RssSampler(self.pid) as rss:
            start = time.monotonic()
            status, answer = await self.api("POST", f"/filesystem/{SYSTEM}/transfer/upload", json={
                "path": target, "transferDirectives": {"transferMethod": "s3", "fileSize": self.size}})
            if status != 201:
                raise RuntimeError(f"transfer/upload: HTTP {status}: {answer}")
            directives = answer["transferDirectives"]
            complete = await put_parts(self.s3, local, directives["partsUploadUrls"],
                                       directives["maxPartSize"])
            async with self.s3.post(directives["completeUploadUrl"], data=complete) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"complete: HTTP {response.status}")
            # The job fetches the object into the target (and deletes the object).
            await self.wait_job(answer["transferJob"])
            elapsed = time.monotonic() - start
        check(target, digest, "staged upload")
        os.unlink(target)
        return elapsed, rss, directives["maxPartSize"]

    async def staged_download(self, source, digest):
        local = os.path.join(self.workdir, "staged-download.bin")
        async with RssSampler(self.pid) as rss:
            start = time.monotonic()
            status, answer = await self.api("POST", f"/filesystem/{SYSTEM}/transfer/download", json={
                "path": source, "transferDirectives": {"transferMethod": "s3"}})
            if status != 201:
                raise RuntimeError(f"transfer/download: HTTP {status}: {answer}")
            await self.wait_job(answer["transferJob"])
            url = answer["transferDirectives"]["downloadUrl"]
            await get_to_file(self.s3, url, local)
            elapsed = time.monotonic() - start
        check(local, digest, "staged download")
        os.unlink(local)
        # Nothing else removes the staged object, and moto keeps it in memory.
        async with self.s3.delete(url.split("?")[0], headers=FAKE_AUTH) as response:
            await response.read()
        return elapsed, rss

    # -- floors -----------------------------------------------------------------------------

    async def noop_job(self):
        """Seconds from submitting a job that does nothing until squeue shows it COMPLETED."""
        start = time.monotonic()
        job_id = (await run_as_fireuser("sbatch", "--parsable", "--partition", TRANSFER_PARTITION,
                                        "--output", "/dev/null", "--wrap", "true")).split(";")[0]
        while True:
            state = await run_as_fireuser("squeue", "--noheader", "--states", "all",
                                          "--jobs", job_id, "--format", "%T")
            if state == "COMPLETED":
                return time.monotonic() - start
            if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                raise RuntimeError(f"no-op job {job_id} ended {state!r}")
            await asyncio.sleep(POLL)

    def floor_url(self, key):
        return f"{self.s3_url}/{FLOOR_BUCKET}/{key}"

    async def floor_put(self, local, key, part_size):
        """Multipart PUT of `local` straight to moto, same part size and concurrency."""
        url = self.floor_url(key)
        async with self.s3.post(url + "?uploads", headers=FAKE_AUTH) as response:
            text = await response.text()
            upload_id = text.split("<UploadId>")[1].split("</UploadId>")[0]
        count = max(1, -(-self.size // part_size))
        urls = [f"{url}?partNumber={n}&uploadId={upload_id}" for n in range(1, count + 1)]
        complete = await put_parts(self.s3, local, urls, part_size, headers=FAKE_AUTH)
        async with self.s3.post(f"{url}?uploadId={upload_id}", data=complete, headers=FAKE_AUTH) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"floor complete: HTTP {response.status}")

    async def floor_delete(self, key):
        async with self.s3.delete(self.floor_url(key), headers=FAKE_AUTH) as response:
            await response.read()

    async def curl(self, *args):
        auth = "Authorization: " + FAKE_AUTH["Authorization"]
        process = await asyncio.create_subprocess_exec("curl", "--silent", "--show-error", "--fail",
                                                       "--header", auth, *args)
        if await process.wait() != 0:
            raise RuntimeError(f"curl {args} failed")

    async def floor_upload(self, local, digest, part_size):
        """(single-hop, two-hop) seconds: client multipart PUT; the same plus curl GET."""
        start = time.monotonic()
        await self.floor_put(local, "single", part_size)
        single = time.monotonic() - start
        await self.floor_delete("single")

        target = f"{BENCH_DIR}/transfer-floor-upload.bin"
        start = time.monotonic()
        await self.floor_put(local, "two-hop", part_size)
        await self.curl("--output", target, self.floor_url("two-hop"))
        two = time.monotonic() - start
        check(target, digest, "two-hop upload floor")
        os.unlink(target)
        await self.floor_delete("two-hop")
        return single, two

    async def floor_download(self, local, digest, part_size):
        """(single-hop, two-hop) seconds: client GET; multipart PUT of the file (the parts a
        staged download cuts) plus client GET."""
        fetched = os.path.join(self.workdir, "floor-download.bin")
        await self.curl("--output", "/dev/null", "--upload-file", local, self.floor_url("single"))
        start = time.monotonic()
        await get_to_file(self.s3, self.floor_url("single"), fetched, headers=FAKE_AUTH)
        single = time.monotonic() - start
        check(fetched, digest, "single-hop download floor")
        os.unlink(fetched)
        await self.floor_delete("single")

        start = time.monotonic()
        await self.floor_put(local, "two-hop", part_size)
        await get_to_file(self.s3, self.floor_url("two-hop"), fetched, headers=FAKE_AUTH)
        two = time.monotonic() - start
        check(fetched, digest, "two-hop download floor")
        os.unlink(fetched)
        await self.floor_delete("two-hop")
        return single, two


async def run(args, env):
    size = args.size_mib * MIB
    workdir = tempfile.mkdtemp(prefix="ironbench-transfer-")
    local = os.path.join(workdir, "source.bin")
    # The download source lives with fireuser's files, owned by fireuser (the job runs as them).
    source = f"{BENCH_DIR}/transfer-download.bin"
    try:
        make_file(local, size)
        digest = sha256_file(local)
        shutil.copyfile(local, source)
        shutil.chown(source, "fireuser", "fireuser")

        bench = Bench(env, args.pid, size, workdir)
        # limit=0: the 10 concurrent part PUTs must not queue on the connection pool.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                      timeout=aiohttp.ClientTimeout(total=None)) as s3:
            bench.http, bench.s3 = http, s3
            async with s3.put(f"{bench.s3_url}/{FLOOR_BUCKET}", headers=FAKE_AUTH) as response:
                await response.read()  # 200 also when it already exists

            results = {"upload": [], "download": []}
            for _ in range(args.repeat):
                # The floor puts parts of the size Ironcrest handed out.
                seconds, rss, part_size = await bench.staged_upload(local, digest)
                single, two = await bench.floor_upload(local, digest, part_size)
                upload = (seconds, single, two, rss)

                seconds, rss = await bench.staged_download(source, digest)
                single, two = await bench.floor_download(local, digest, part_size)
                download = (seconds, single, two, rss)

                # Slurm holds back a batch job submitted within a few seconds of another one's
                # start (`batch_sched_delay`, 3 s by default; measured here: up to 6 s after it),
                # so the no-op job is measured apart from the staged transfers' jobs, both ways.
                await asyncio.sleep(SETTLE)
                job = await bench.noop_job()
                await asyncio.sleep(SETTLE)
                results["upload"].append(upload + (job,))
                results["download"].append(download + (job,))

        print(f"file {args.size_mib} MiB, part size {part_size // MIB} MiB, {CONCURRENCY} concurrent part PUTs, "
              f"repeat {args.repeat} (median MB/s and s; RSS: first before, max peak, last after)")
        print(f"{'op':<16} {'MB/s':>6} {'1-hop':>6} {'ratio':>5} {'2-hop':>6} {'ratio':>5} {'no-op job s':>11} "
              f"{'2-hop+job':>9} {'ratio':>5} {'RSS KiB before':>14} {'peak':>6} {'after':>6}")
        for op, rows in results.items():
            mbps = [statistics.median(size / 1e6 / row[i] for row in rows) for i in range(3)]
            job = statistics.median(row[4] for row in rows)
            if op == "download":
                with_job = statistics.median(size / 1e6 / (row[2] + row[4]) for row in rows)
                job_columns = f"{with_job:>9.1f} {mbps[0] / with_job:>5.2f}"
            else:
                job_columns = f"{'-':>9} {'-':>5}"
            rss = [row[3] for row in rows]
            print(f"{'staged ' + op:<16} {mbps[0]:>6.1f} {mbps[1]:>6.1f} {mbps[0] / mbps[1]:>5.2f} "
                  f"{mbps[2]:>6.1f} {mbps[0] / mbps[2]:>5.2f} {job:>11.2f} {job_columns} "
                  f"{rss[0].before:>14} {max(r.peak for r in rss):>6} {rss[-1].after:>6}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for path in (source, f"{BENCH_DIR}/transfer-upload.bin", f"{BENCH_DIR}/transfer-floor-upload.bin"):
            try:
                os.unlink(path)
            except OSError:
                pass



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", choices=["transfer"], default="transfer")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pid", type=int, required=True, help="Ironcrest's pid, for RSS")
    asyncio.run(run(parser.parse_args(), os.environ))


if __name__ == "__main__":
    main()
