"""pyfirecrest's async v1 client (`firecrest.v1.AsyncFirecrest`) against Ironcrest's v1 API.
The async client merges concurrent polls of `/compute/jobs` and of `/tasks` into one request
with comma-separated ids, which these tests make it do."""

import asyncio
import hashlib
import os
import time

import pytest
from firecrest.FirecrestException import (
    ERROR_HEADERS,
    FirecrestException,
    HeaderException,
    NotFound,
)

from .conftest import SYSTEM, write


def run(coroutine):
    return asyncio.run(coroutine)


def test_status_and_utilities(v1_async, workdir, tmp_path):
    async def scenario():
        systems = await v1_async.all_systems()
        assert SYSTEM in [s["system"] for s in systems]
        parameters = await v1_async.parameters()
        assert {p["name"] for p in parameters["utilities"]} >= {"UTILITIES_MAX_FILE_SIZE"}
        await v1_async.mkdir(SYSTEM, f"{workdir}/x/y", p=True)
        listed, whoami = await asyncio.gather(
            v1_async.list_files(SYSTEM, f"{workdir}/x"), v1_async.whoami(SYSTEM)
        )
        assert [f["name"] for f in listed] == ["y"] and whoami == "fireuser"
        # Text: the async client's simple_download runs `response.json()` on the file and
        # only catches JSONDecodeError, so bytes that are not UTF-8 raise UnicodeDecodeError
        # in the client (whatever the server).
        local = tmp_path / "a.bin"
        local.write_bytes(os.urandom(25_000).hex().encode())
        await v1_async.simple_upload(SYSTEM, str(local), f"{workdir}/x")
        copy = tmp_path / "b.bin"
        await v1_async.simple_download(SYSTEM, f"{workdir}/x/a.bin", str(copy))
        assert copy.read_bytes() == local.read_bytes()
        assert await v1_async.checksum(SYSTEM, f"{workdir}/x/a.bin") == hashlib.sha256(
            local.read_bytes()
        ).hexdigest()
        with pytest.raises(HeaderException):
            await v1_async.list_files(SYSTEM, f"{workdir}/missing")
        with pytest.raises(HeaderException):
            await v1_async.list_files("no-such-system", workdir)

    run(scenario())


def test_jobs_submitted_concurrently_are_polled_in_one_merged_request(v1_async, workdir):
    async def scenario():
        script = f"#!/bin/bash\n#SBATCH --output={workdir}/slurm-%j.out\nsleep 300\n"
        jobs = await asyncio.gather(
            v1_async.submit(SYSTEM, script_str=script),
            v1_async.submit(SYSTEM, script_str=script),
        )
        ids = [str(job["jobid"]) for job in jobs]
        # Concurrent polls of two jobs: one `/compute/jobs?jobs=a,b` and one task read.
        first, second = await asyncio.gather(
            v1_async.poll_active(SYSTEM, [ids[0]]), v1_async.poll_active(SYSTEM, [ids[1]])
        )
        assert ids[0] in [j["jobid"] for j in first]
        assert ids[1] in [j["jobid"] for j in second]
        await asyncio.gather(*(v1_async.cancel(SYSTEM, job_id) for job_id in ids))
        for _ in range(300):
            records = await v1_async.poll(SYSTEM, ids)
            if len(records) == 2 and all(r["state"].startswith("CANCELLED") for r in records):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the jobs were not cancelled: {records}")
        with pytest.raises(FirecrestException):
            await v1_async.poll_active(SYSTEM, ["4294967290"])

    run(scenario())
