"""Every method of pyfirecrest's v1 client (`firecrest.v1.Firecrest`) against Ironcrest's v1
API: status, utilities, compute (each through a task polled to its end), storage (transfer
jobs and staged transfers through S3, past the utilities' size limit), tasks, reservations,
and v1's error headers."""

import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest
from firecrest.FirecrestException import (
    ERROR_HEADERS,
    FirecrestException,
    HeaderException,
    NotFound,
)

from .conftest import FIREUSER, RESERVATION, RUN_NOW, SYSTEM, own, write


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def header_of(error):
    """The v1 error header an exception's last response carries (pyfirecrest raises its
    `HeaderException` for the ones in its `ERROR_HEADERS`, a `FirecrestException` for the
    others: `X-Exists`, `X-Size-Limit`, `X-Invalid-Mode`, …)."""
    headers = error.responses[-1].headers
    known = ERROR_HEADERS | {"X-Exists", "X-Size-Limit", "X-Invalid-Mode", "X-Invalid-Owner", "X-Invalid-Group"}
    return next((h for h in sorted(known) if h in headers), None)


def wait_until_finished(v1, job_id, attempts=300):
    """The job's accounting record once it has finished (v1's `poll`)."""
    for _ in range(attempts):
        jobs = v1.poll(SYSTEM, [job_id])
        if jobs and jobs[0]["state"] not in ("PENDING", "RUNNING", "COMPLETING"):
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never finished")


# -- status ------------------------------------------------------------------------------


def test_services_systems_filesystems_and_parameters(v1):
    services = {s["service"]: s for s in v1.all_services()}
    assert {"compute", "utilities", "storage", "tasks"} <= set(services)
    assert v1.service("compute")["status"] == "available"
    with pytest.raises(NotFound):
        v1.service("no-such-service")

    systems = {s["system"]: s for s in v1.all_systems()}
    assert systems[SYSTEM]["status"] == "available", systems
    assert v1.system(SYSTEM)["system"] == SYSTEM
    with pytest.raises(NotFound):
        v1.system("no-such-system")

    assert [fs["path"] for fs in v1.filesystems(SYSTEM)[SYSTEM]] == ["/home"]
    assert SYSTEM in v1.filesystems()

    parameters = v1.parameters()
    utilities = {p["name"]: p for p in parameters["utilities"]}
    assert utilities["UTILITIES_MAX_FILE_SIZE"]["value"] == 5
    assert utilities["UTILITIES_MAX_FILE_SIZE"]["unit"] == "MB"
    general = {p["name"]: p["value"] for p in parameters["general"]}
    assert general["FIRECREST_VERSION"] == "1.16.0"
    # The client read the API level from the parameters.
    assert str(v1._api_version) == "1.16.0"


# -- utilities ---------------------------------------------------------------------------


def test_directories_links_modes_and_owners(v1, workdir):
    nested = f"{workdir}/a/b"
    assert v1.mkdir(SYSTEM, nested, p=True) == nested
    assert os.path.isdir(nested)
    write(f"{workdir}/a/.hidden", b"x")
    names = {f["name"] for f in v1.list_files(SYSTEM, f"{workdir}/a")}
    assert names == {"b"}
    entries = {f["name"]: f for f in v1.list_files(SYSTEM, f"{workdir}/a", show_hidden=True)}
    assert set(entries) == {"b", ".hidden"}
    assert entries["b"]["type"] == "d" and entries["b"]["link_target"] == ""
    assert entries[".hidden"]["user"] == "fireuser" and entries[".hidden"]["size"] == "1"
    recursive = {f["name"] for f in v1.list_files(SYSTEM, workdir, recursive=True)}
    assert "a/b" in recursive or "b" in recursive

    v1.symlink(SYSTEM, f"{workdir}/a/.hidden", f"{workdir}/link")
    assert os.readlink(f"{workdir}/link") == f"{workdir}/a/.hidden"
    link = next(f for f in v1.list_files(SYSTEM, workdir) if f["name"] == "link")
    assert link["type"] == "l" and link["link_target"] == f"{workdir}/a/.hidden"

    v1.chmod(SYSTEM, f"{workdir}/a/.hidden", "700")
    assert os.stat(f"{workdir}/a/.hidden").st_mode & 0o777 == 0o700
    v1.chown(SYSTEM, f"{workdir}/a/.hidden", group="hpcusers")
    assert os.stat(f"{workdir}/a/.hidden").st_gid == __import__("grp").getgrnam("hpcusers").gr_gid

    assert v1.mv(SYSTEM, f"{workdir}/a/.hidden", f"{workdir}/moved") == f"{workdir}/moved"
    assert os.path.exists(f"{workdir}/moved") and not os.path.exists(f"{workdir}/a/.hidden")
    assert v1.copy(SYSTEM, f"{workdir}/a", f"{workdir}/copy") == f"{workdir}/copy"
    assert os.path.isdir(f"{workdir}/copy/b")


def test_reading_files(v1, workdir):
    lines = "".join(f"line {i}\n" for i in range(1, 21))
    path = write(f"{workdir}/lines.txt", lines.encode())
    assert v1.head(SYSTEM, path) == "".join(f"line {i}\n" for i in range(1, 11))
    assert v1.head(SYSTEM, path, lines="2") == "line 1\nline 2\n"
    assert v1.head(SYSTEM, path, bytes="4") == "line"
    assert v1.head(SYSTEM, path, lines="18", skip_ending=True) == "line 1\nline 2\n"
    assert v1.tail(SYSTEM, path, lines="1") == "line 20\n"
    assert v1.tail(SYSTEM, path, lines="20", skip_beginning=True) == "line 20\n"
    assert v1.view(SYSTEM, path) == lines
    assert v1.checksum(SYSTEM, path) == sha256(path)
    assert v1.file_type(SYSTEM, path) == "ASCII text"
    stat = v1.stat(SYSTEM, path)
    assert stat["size"] == len(lines) and stat["uid"] == FIREUSER.pw_uid
    assert stat["mode"] == os.stat(path).st_mode
    os.symlink(path, f"{workdir}/to-lines")
    assert v1.stat(SYSTEM, f"{workdir}/to-lines", dereference=True)["size"] == len(lines)
    assert v1.stat(SYSTEM, f"{workdir}/to-lines")["size"] == len(path)


def test_small_uploads_downloads_and_deletes(v1, workdir, tmp_path):
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(100_000))
    v1.simple_upload(SYSTEM, str(local), workdir)
    assert sha256(f"{workdir}/data.bin") == sha256(local)
    v1.simple_upload(SYSTEM, str(local), workdir, filename="renamed.bin")
    assert sha256(f"{workdir}/renamed.bin") == sha256(local)
    copy = tmp_path / "copy.bin"
    v1.simple_download(SYSTEM, f"{workdir}/renamed.bin", str(copy))
    assert sha256(copy) == sha256(local)
    v1.simple_delete(SYSTEM, f"{workdir}/renamed.bin")
    assert not os.path.exists(f"{workdir}/renamed.bin")


def test_past_the_utilities_limit_files_are_refused(v1, workdir, tmp_path):
    big = write(f"{workdir}/big.bin", os.urandom(5 * 1024 * 1024 + 1))
    with pytest.raises(FirecrestException) as raised:
        v1.simple_download(SYSTEM, big, str(tmp_path / "big.bin"))
    assert header_of(raised.value) == "X-Size-Limit"
    with pytest.raises(FirecrestException) as raised:
        v1.view(SYSTEM, big)
    assert header_of(raised.value) == "X-Size-Limit"
    local = tmp_path / "upload.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 1))
    with pytest.raises(FirecrestException) as raised:
        v1.simple_upload(SYSTEM, str(local), workdir, filename="too-big.bin")
    assert raised.value.responses[-1].status_code == 413
    assert not os.path.exists(f"{workdir}/too-big.bin")


def test_whoami_and_groups(v1):
    assert v1.whoami(SYSTEM) == "fireuser"
    assert v1.whoami() == "fireuser"
    ids = v1.groups(SYSTEM)
    assert ids["user"] == {"name": "fireuser", "id": str(FIREUSER.pw_uid)}
    assert {"name": "hpcusers", "id": str(__import__("grp").getgrnam("hpcusers").gr_gid)} in ids["groups"]


def test_compress_and_extract(v1, workdir):
    os.mkdir(f"{workdir}/tree")
    own(f"{workdir}/tree")
    write(f"{workdir}/tree/file", b"content\n")
    archive = f"{workdir}/tree.tar.gz"
    assert v1.compress(SYSTEM, f"{workdir}/tree", archive) == archive
    os.mkdir(f"{workdir}/out")
    own(f"{workdir}/out")
    assert v1.extract(SYSTEM, archive, f"{workdir}/out") == f"{workdir}/out"
    with open(f"{workdir}/out/tree/file", "rb") as f:
        assert f.read() == b"content\n"


# -- errors ------------------------------------------------------------------------------


def test_error_headers_name_a_missing_path_a_denial_and_an_unknown_system(v1, workdir):
    with pytest.raises(HeaderException) as raised:
        v1.list_files(SYSTEM, f"{workdir}/missing")
    assert header_of(raised.value) == "X-Invalid-Path"
    assert raised.value.responses[-1].status_code == 400

    locked = f"{workdir}/locked"
    os.mkdir(locked, 0o700)  # root's
    with pytest.raises(HeaderException) as raised:
        v1.list_files(SYSTEM, locked)
    assert header_of(raised.value) == "X-Permission-Denied"
    with pytest.raises(HeaderException) as raised:
        v1.mkdir(SYSTEM, f"{locked}/sub")
    assert header_of(raised.value) == "X-Permission-Denied"

    with pytest.raises(HeaderException) as raised:
        v1.list_files("no-such-system", workdir)
    assert header_of(raised.value) == "X-Machine-Does-Not-Exist"
    body = raised.value.responses[-1].json()
    assert body["description"] == "Error on ls operation" and body["error"] == "System not found"

    v1.mkdir(SYSTEM, f"{workdir}/lines")
    with pytest.raises(FirecrestException) as raised:
        v1.mkdir(SYSTEM, f"{workdir}/lines")
    assert header_of(raised.value) == "X-Exists"
    with pytest.raises(FirecrestException) as raised:
        v1.chmod(SYSTEM, f"{workdir}/lines", "999")
    assert header_of(raised.value) == "X-Invalid-Mode"


# -- compute -----------------------------------------------------------------------------


def test_a_local_script_is_submitted_and_polled_to_its_end(v1, workdir):
    script = f"#!/bin/bash\n{RUN_NOW}#SBATCH --output={workdir}/out.txt\necho \"hello $GREETING\"\n"
    job = v1.submit(SYSTEM, script_str=script, env_vars={"GREETING": "from v1"})
    assert job["result"] == "Job submitted"
    assert isinstance(job["jobid"], int) and job["firecrest_taskid"]
    assert job["job_file_out"] == f"{workdir}/out.txt"
    finished = wait_until_finished(v1, job["jobid"])
    assert finished["state"] == "COMPLETED" and finished["exit_code"] == "0:0"
    with open(f"{workdir}/out.txt") as f:
        assert f.read() == "hello from v1\n"


def test_a_remote_script_runs_in_its_directory(v1, workdir):
    write(f"{workdir}/job.sh", f"#!/bin/bash\n{RUN_NOW}pwd > where.txt\n".encode())
    job = v1.submit(SYSTEM, script_remote_path=f"{workdir}/job.sh")
    wait_until_finished(v1, job["jobid"])
    for _ in range(50):
        if os.path.exists(f"{workdir}/where.txt"):
            break
        time.sleep(0.1)
    with open(f"{workdir}/where.txt") as f:
        assert f.read() == f"{workdir}\n"


def test_active_jobs_are_listed_and_cancelled(v1, workdir, tmp_path):
    local = tmp_path / "sleep.sh"
    local.write_text(f"#!/bin/bash\n#SBATCH --output={workdir}/slurm-%j.out\nsleep 300\n")
    job = v1.submit(SYSTEM, script_local_path=str(local))
    job_id = str(job["jobid"])
    active = v1.poll_active(SYSTEM, [job_id])
    assert [j["jobid"] for j in active] == [job_id]
    assert active[0]["state"] in ("PENDING", "RUNNING") and active[0]["user"] == "fireuser"
    assert job_id in [j["jobid"] for j in v1.poll_active(SYSTEM)]
    page = v1.poll_active(SYSTEM, page_size=1, page_number=0)
    assert len(page) == 1
    v1.cancel(SYSTEM, job_id)
    assert wait_until_finished(v1, job_id)["state"].startswith("CANCELLED")
    # Cancelling a finished job fails in its task, as v1's scancel did.
    with pytest.raises(FirecrestException):
        v1.cancel(SYSTEM, job_id)


def test_failed_tasks_raise(v1):
    # A query of jobs the scheduler does not know: its task finishes with errors.
    with pytest.raises(FirecrestException) as raised:
        v1.poll_active(SYSTEM, ["4294967290"])
    task = raised.value.responses[-1].json()["tasks"]
    assert [t["status"] for t in task.values()] == ["400"]
    # A script the scheduler refuses: the submission's task fails with sbatch's message.
    with pytest.raises(FirecrestException) as raised:
        v1.submit(SYSTEM, script_str="#!/bin/bash\n#SBATCH --partition=no-such-partition\ntrue\n")
    (task,) = raised.value.responses[-1].json()["tasks"].values()
    assert task["status"] == "400" and "partition" in task["data"].lower()


def test_accounting_and_the_scheduler(v1, workdir):
    job = v1.submit(SYSTEM, script_str=f"#!/bin/bash\n{RUN_NOW}#SBATCH --output={workdir}/o\ntrue\n")
    wait_until_finished(v1, job["jobid"])
    today = time.strftime("%Y-%m-%d")
    listed = v1.poll(SYSTEM, start_time=today)
    assert str(job["jobid"]) in [j["jobid"] for j in listed]
    assert v1.poll(SYSTEM, ["4294967290"]) == []
    nodes = v1.nodes(SYSTEM)
    assert nodes and {"NodeName", "ActiveFeatures", "Partitions", "State"} <= set(nodes[0])
    partitions = {p["PartitionName"] for p in v1.partitions(SYSTEM)}
    assert "normal" in partitions
    assert [p["PartitionName"] for p in v1.partitions(SYSTEM, ["normal"])] == ["normal"]
    reservations = [r["ReservationName"] for r in v1.reservations(SYSTEM)]
    assert RESERVATION in reservations


# -- tasks -------------------------------------------------------------------------------


def test_tasks_are_the_callers_and_answered_by_id(v1):
    job = v1.submit(SYSTEM, script_str="#!/bin/bash\ntrue\n")
    task_id = job["firecrest_taskid"]
    tasks = v1._tasks([task_id])
    assert list(tasks) == [task_id]
    task = tasks[task_id]
    assert task["status"] == "200" and task["service"] == "compute" and task["system"] == SYSTEM
    assert task["user"] == "fireuser" and task["data"]["jobid"] == job["jobid"]
    # Ids that name no task of the caller's are left out, as v1 did.
    assert v1._tasks(["not-a-task"]) == {}


# -- reservations --------------------------------------------------------------------------


def test_reservations_are_listed_and_changed_by_scheduler_operators_only(v1):
    listed = {r["reservationname"]: r for r in v1.all_reservations(SYSTEM)}
    assert listed[RESERVATION]["state"] == "ACTIVE" and listed[RESERVATION]["nodes"]
    # fireuser is no Slurm operator: scontrol refuses, as 403 with X-Permission-Denied.
    changes = [
        lambda: v1.create_reservation(
            SYSTEM, "v1-test", "project1", "1", "", "2030-01-01T00:00:00", "2030-01-01T01:00:00"
        ),
        lambda: v1.update_reservation(
            SYSTEM, RESERVATION, "project1", "1", "", "2030-01-01T00:00:00", "2030-01-01T01:00:00"
        ),
        lambda: v1.delete_reservation(SYSTEM, RESERVATION),
    ]
    for change in changes:
        with pytest.raises(HeaderException) as raised:
            change()
        assert raised.value.responses[-1].status_code == 403
        assert header_of(raised.value) == "X-Permission-Denied"
    # Values scontrol would read otherwise than meant are refused before it runs.
    with pytest.raises(FirecrestException) as raised:
        v1.create_reservation(SYSTEM, "v1-test", "project1", "1", "", "tomorrow", "2030-01-01T01:00:00")
    assert raised.value.responses[-1].status_code == 400
    assert "starttime" in raised.value.responses[-1].json()["error"]
    assert RESERVATION in {r["reservationname"] for r in v1.all_reservations(SYSTEM)}
