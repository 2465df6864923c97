"""pyfirecrest 3.10.0's transfer calls against the Ironcrest of `scripts/dev-env up`:
staged (S3) upload and download of files past the client's 1 MiB direct limit, and the
internal operations as jobs, each waited for the way the client does it (job state, then
the success sentence in the job's output log read through ops/view).
"""

import hashlib
import os

import pytest

from conftest import own, write

SYSTEM = "cluster-slurm-ssh"
MIB = 1024 * 1024


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_staged_upload_of_a_multi_part_file_is_byte_exact(client, workdir, tmp_path):
    local = tmp_path / "big input.bin"
    local.write_bytes(os.urandom(12 * MIB + 321))  # three 5 MiB parts
    name = "big 'upload'.bin"

    client.upload(SYSTEM, str(local), workdir, name, blocking=True)

    assert sha256(f"{workdir}/{name}") == sha256(local)
    assert sorted(os.listdir(workdir)) == [name]


def test_staged_download_of_a_multi_part_file_is_byte_exact(client, workdir, tmp_path):
    source = write(f"{workdir}/big download.bin", os.urandom(11 * MIB + 7))
    local = tmp_path / "downloaded.bin"

    client.download(SYSTEM, source, str(local), blocking=True)

    assert sha256(local) == sha256(source)


def test_mv_and_cp_run_as_jobs(client, workdir):
    source = write(f"{workdir}/it's here", b"payload")

    client.cp(SYSTEM, source, f"{workdir}/copy", blocking=True)
    client.mv(SYSTEM, f"{workdir}/copy", f"{workdir}/moved", blocking=True)

    assert open(source, "rb").read() == b"payload"
    assert open(f"{workdir}/moved", "rb").read() == b"payload"
    assert not os.path.exists(f"{workdir}/copy")


def transfer_job(client, method, op, **kwargs):
    """What rm, compress and extract do after their ops call timed out (408): the
    transfer endpoint, then the client's own wait for the job and its log."""
    if method == "delete":
        response = client._delete_request(
            endpoint=f"/filesystem/{SYSTEM}/transfer/{op}", params=kwargs
        )
        job = client._check_response(response, 200)
    else:
        response = client._post_request(
            endpoint=f"/filesystem/{SYSTEM}/transfer/{op}", json_data=kwargs
        )
        job = client._check_response(response, 201)
    client._wait_for_transfer_job(job)
    return job


def test_compress_extract_and_rm_as_jobs(client, workdir):
    tree = f"{workdir}/tree"
    os.mkdir(tree)
    own(tree)
    write(f"{tree}/a file", b"alpha")

    transfer_job(
        client,
        "post",
        "compress",
        source_path=tree,
        target_path=f"{workdir}/tree.tar.gz",
        dereference=False,
        compression="gzip",
        match_pattern=None,
    )
    out = f"{workdir}/out"
    os.mkdir(out)
    own(out)
    transfer_job(
        client,
        "post",
        "extract",
        source_path=f"{workdir}/tree.tar.gz",
        target_path=out,
        compression="gzip",
    )
    assert open(f"{out}/tree/a file", "rb").read() == b"alpha"

    transfer_job(client, "delete", "rm", path=out)
    assert not os.path.exists(out)


def test_a_failed_transfer_job_raises(client, workdir):
    with pytest.raises(Exception, match="Transfer job failed"):
        client.cp(SYSTEM, f"{workdir}/absent", f"{workdir}/b", blocking=True)
