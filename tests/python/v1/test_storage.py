"""pyfirecrest's v1 storage methods against Ironcrest's v1 API: transfer jobs
(`submit_*_job`, each a task done once its job is submitted, the job then followed through
`poll`), and staged transfers through S3 of a file past the utilities' size limit (the
client runs the upload's `curl` command, then follows the task to 114; a download's task
hands out the URL at 117), `invalidate`, and the task listing."""

import asyncio
import hashlib
import os
import time
import urllib.error
import urllib.request

import pytest
from firecrest.FirecrestException import FirecrestException
from firecrest.v1 import AsyncFirecrest

from .conftest import RUN_NOW, SYSTEM, V1_URL, auth, own, write

BIG = 6 * 1024 * 1024  # past UTILITIES_MAX_FILE_SIZE (5 MB), across a part boundary


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def finished(v1, job_id, attempts=600):
    for _ in range(attempts):
        jobs = v1.poll(SYSTEM, [job_id])
        if jobs and jobs[0]["state"] not in ("PENDING", "RUNNING", "COMPLETING"):
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never finished")


def test_transfer_jobs_move_copy_sync_compress_extract_and_delete(v1, workdir):
    write(f"{workdir}/a.txt", b"alpha\n")
    os.mkdir(f"{workdir}/tree")
    own(f"{workdir}/tree")
    write(f"{workdir}/tree/b.txt", b"beta\n")
    jobs = [
        v1.submit_copy_job(SYSTEM, f"{workdir}/a.txt", f"{workdir}/copy.txt"),
        v1.submit_rsync_job(SYSTEM, f"{workdir}/tree/", f"{workdir}/synced"),
        v1.submit_compress_job(SYSTEM, f"{workdir}/tree", f"{workdir}/tree.tar.gz"),
    ]
    for job in jobs:
        assert job["result"] == "Job submitted" and job["system"] == SYSTEM, job
        assert job["job_file_err"].endswith(".log"), job
        assert finished(v1, job["jobid"])["state"] == "COMPLETED", job
    with open(f"{workdir}/copy.txt", "rb") as f:
        assert f.read() == b"alpha\n"
    with open(f"{workdir}/synced/b.txt", "rb") as f:
        assert f.read() == b"beta\n"
    os.mkdir(f"{workdir}/out")
    own(f"{workdir}/out")
    then = [
        v1.submit_move_job(SYSTEM, f"{workdir}/copy.txt", f"{workdir}/moved.txt"),
        v1.submit_extract_job(SYSTEM, f"{workdir}/tree.tar.gz", f"{workdir}/out"),
        v1.submit_delete_job(SYSTEM, f"{workdir}/synced"),
    ]
    for job in then:
        assert finished(v1, job["jobid"])["state"] == "COMPLETED", job
    assert os.path.exists(f"{workdir}/moved.txt") and not os.path.exists(f"{workdir}/copy.txt")
    with open(f"{workdir}/out/tree/b.txt", "rb") as f:
        assert f.read() == b"beta\n"
    assert not os.path.exists(f"{workdir}/synced")


def test_a_transfer_job_waits_for_its_stage_out_job(v1, workdir):
    held = v1.submit(SYSTEM, script_str=f"#!/bin/bash\n#SBATCH --output={workdir}/held.out\nsleep 300\n")
    write(f"{workdir}/a.txt", b"alpha\n")
    job = v1.submit_copy_job(
        SYSTEM, f"{workdir}/a.txt", f"{workdir}/b.txt", time="5", stage_out_job_id=str(held["jobid"])
    )
    (waiting,) = v1.poll_active(SYSTEM, [str(job["jobid"])])
    assert waiting["state"] == "PENDING" and waiting["nodelist"] == "(Dependency)", waiting
    assert waiting["time_left"] == "5:00", waiting
    v1.cancel(SYSTEM, job["jobid"])
    v1.cancel(SYSTEM, held["jobid"])
    with pytest.raises(FirecrestException) as raised:
        v1.submit_copy_job(SYSTEM, f"{workdir}/a.txt", f"{workdir}/b.txt", time="soon")
    assert "time" in raised.value.responses[-1].json()["error"]


def test_a_staged_upload_past_the_utilities_limit_reaches_the_system(v1, workdir, tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(BIG))
    upload = v1.external_upload(SYSTEM, str(local), workdir)
    data = upload.object_storage_data
    assert data["parameters"]["method"] == "PUT" and "--upload-file" in data["command"]
    assert upload.status == "111"
    upload.finish_upload()
    for _ in range(600):
        if not upload.in_progress:
            break
        time.sleep(0.5)
    assert upload.status == "114", upload.data
    assert sha256(f"{workdir}/big.bin") == sha256(local)
    # The task names what it moved; listed, it is the same task.
    assert upload.data["target"] == f"{workdir}/big.bin"
    assert upload.task_id in v1._tasks()


def test_a_staged_upload_to_a_file_path_and_its_failure(v1, workdir, tmp_path):
    local = tmp_path / "x.bin"
    local.write_bytes(b"exactly this\n")
    upload = v1.external_upload(SYSTEM, str(local), f"{workdir}/named.bin")
    upload.finish_upload()
    for _ in range(600):
        if not upload.in_progress:
            break
        time.sleep(0.5)
    assert upload.status == "114", upload.data
    with open(f"{workdir}/named.bin", "rb") as f:
        assert f.read() == b"exactly this\n"
    # Into a directory the user may not write: the job fails, the task reports 115.
    locked = f"{workdir}/locked"
    os.mkdir(locked, 0o755)  # root's
    upload = v1.external_upload(SYSTEM, str(local), f"{locked}/x.bin")
    upload.finish_upload()
    with pytest.raises(FirecrestException):
        for _ in range(600):
            if not upload.in_progress:
                break
            time.sleep(0.5)
    assert not os.path.exists(f"{locked}/x.bin")


def test_a_staged_download_past_the_utilities_limit_and_its_invalidation(v1, workdir, tmp_path):
    remote = write(f"{workdir}/big.bin", os.urandom(BIG))
    download = v1.external_download(SYSTEM, remote)
    local = tmp_path / "big.bin"
    download.finish_download(str(local))
    assert download.status == "117"
    assert sha256(local) == sha256(remote)
    url = download.object_storage_link
    download.invalidate_object_storage_link()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url)
    assert refused.value.code == 404
    # A download of a missing file is refused at once, naming the path.
    with pytest.raises(FirecrestException):
        v1.external_download(SYSTEM, f"{workdir}/missing")


def test_the_async_client_stages_both_ways(workdir, tmp_path):
    async def scenario():
        client = AsyncFirecrest(firecrest_url=V1_URL, authorization=auth())
        client.time_between_calls = {service: 0 for service in client.time_between_calls}
        local = tmp_path / "up.bin"
        local.write_bytes(os.urandom(BIG))
        upload = await client.external_upload(SYSTEM, str(local), workdir)
        await upload.finish_upload()
        for _ in range(600):
            if not await upload.in_progress:
                break
            await asyncio.sleep(0.5)
        assert await upload.status == "114"
        assert sha256(f"{workdir}/up.bin") == sha256(local)
        download = await client.external_download(SYSTEM, f"{workdir}/up.bin")
        await download.finish_download(str(tmp_path / "down.bin"))
        assert sha256(tmp_path / "down.bin") == sha256(local)

    asyncio.run(scenario())
