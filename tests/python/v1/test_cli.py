"""pyfirecrest's v1 CLI (`firecrest` with `FIRECREST_API_VERSION=1.x`) against Ironcrest's v1
API: status, utilities, compute and tasks commands, each checked against what it did on
the cluster."""

import json
import os
import shutil
import subprocess
import sys
import time

from .conftest import SYSTEM, V1_URL, write

FIRECREST = os.path.join(os.path.dirname(sys.executable), "firecrest")


def cli(*args, check=True, input=None):
    env = dict(
        os.environ,
        FIRECREST_API_VERSION="1.16.0",
        FIRECREST_URL=V1_URL,
        FIRECREST_CLIENT_ID=os.environ["IRONCREST_DEV_CLIENT_ID"],
        FIRECREST_CLIENT_SECRET=os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        AUTH_TOKEN_URL=os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
        FIRECREST_SYSTEM=SYSTEM,
        COLUMNS="400",
    )
    done = subprocess.run(
        [FIRECREST, *args], env=env, capture_output=True, text=True, input=input, timeout=180
    )
    if check:
        assert done.returncode == 0, f"firecrest {args}: {done.stdout}{done.stderr}"
    return done


def raw(*args):
    return json.loads(cli(*args, "--raw").stdout)


def test_status_commands():
    assert SYSTEM in [s["system"] for s in raw("systems")]
    assert raw("systems", "--name", SYSTEM)[0]["status"] == "available"
    assert "compute" in [s["service"] for s in raw("services")]
    parameters = raw("parameters")
    assert "UTILITIES_MAX_FILE_SIZE" in [p["name"] for p in parameters["utilities"]]
    assert "/home" in [fs["path"] for fs in raw("filesystems")[SYSTEM]]


def test_utilities_commands(workdir, tmp_path):
    cli("mkdir", "-p", f"{workdir}/a/b")
    assert os.path.isdir(f"{workdir}/a/b")
    assert [f["name"] for f in raw("ls", f"{workdir}/a")] == ["b"]
    write(f"{workdir}/f.txt", b"one\ntwo\nthree\n")
    assert "two" in cli("head", "-n", "2", f"{workdir}/f.txt").stdout
    assert "three" in cli("tail", "-n", "1", f"{workdir}/f.txt").stdout
    assert raw("stat", f"{workdir}/f.txt")["size"] == 14
    cli("cp", f"{workdir}/f.txt", f"{workdir}/g.txt")
    cli("mv", f"{workdir}/g.txt", f"{workdir}/h.txt")
    assert os.path.exists(f"{workdir}/h.txt") and not os.path.exists(f"{workdir}/g.txt")
    cli("chmod", f"{workdir}/h.txt", "600")
    assert os.stat(f"{workdir}/h.txt").st_mode & 0o777 == 0o600
    cli("rm", "--force", f"{workdir}/h.txt")
    assert not os.path.exists(f"{workdir}/h.txt")
    assert "fireuser" in cli("whoami", "-s", SYSTEM).stdout
    local = tmp_path / "up.txt"
    local.write_text("uploaded\n")
    cli("upload", str(local), workdir)
    with open(f"{workdir}/up.txt") as f:
        assert f.read() == "uploaded\n"
    cli("download", f"{workdir}/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "uploaded\n"
    failed = cli("ls", f"{workdir}/missing", check=False)
    assert failed.returncode == 1 and "Operation failed" in failed.stdout


def test_compute_and_tasks_commands(workdir, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={workdir}/slurm-%j.out\nsleep 300\n")
    submitted = json.loads(cli("submit", str(script)).stdout)
    job_id = str(submitted["jobid"])
    assert job_id in [j["jobid"] for j in raw("poll-active")]
    cli("cancel", job_id)
    for _ in range(200):
        records = raw("poll", job_id)
        if records and records[0]["state"].startswith("CANCELLED"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"job {job_id} was not cancelled")
    task_id = submitted["firecrest_taskid"]
    tasks = json.loads(cli("tasks", "--no-pager", "--raw", task_id).stdout)
    assert tasks[task_id]["status"] == "200"
    assert raw("get-nodes") and raw("get-partitions")
