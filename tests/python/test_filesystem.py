"""pyfirecrest's filesystem calls (3.10.0, and 3.8.1) (ops/*) against the Ironcrest of `scripts/dev-env up`.

Each test works in its own directory under /home/fireuser; the tests run as root, so they
prepare and inspect files directly.
"""

import hashlib
import os

import pytest
from firecrest.FirecrestException import UnexpectedStatusException

from conftest import FIREUSER, own, write

SYSTEM = "cluster-slurm-ssh"
USER = FIREUSER


def test_list_files_with_every_flag(client, workdir):
    write(f"{workdir}/a.txt", b"hello")
    write(f"{workdir}/.hidden", b"")
    os.mkdir(f"{workdir}/sub")
    own(f"{workdir}/sub")
    write(f"{workdir}/sub/deep", b"12")
    os.symlink("a.txt", f"{workdir}/link")
    own(f"{workdir}/link")

    files = {f["name"]: f for f in client.list_files(SYSTEM, workdir)}
    assert sorted(files) == ["a.txt", "link", "sub"]
    a = files["a.txt"]
    assert set(a) == {"name", "type", "linkTarget", "user", "group", "permissions", "lastModified", "size"}
    assert (a["type"], a["permissions"], a["size"], a["user"]) == ("-", "rw-r--r--", "5", "fireuser")
    assert files["link"]["linkTarget"] == "a.txt"
    assert len(a["lastModified"]) == 19 and a["lastModified"][10] == "T"

    hidden = [f["name"] for f in client.list_files(SYSTEM, workdir, show_hidden=True)]
    assert ".hidden" in hidden
    recursive = [f["name"] for f in client.list_files(SYSTEM, workdir, recursive=True)]
    assert "sub/deep" in recursive
    numeric = client.list_files(SYSTEM, workdir, numeric_uid=True)
    assert numeric[0]["user"] == str(USER.pw_uid)
    deref = {f["name"]: f for f in client.list_files(SYSTEM, workdir, dereference=True)}
    assert deref["link"]["type"] == "-"


def test_head_tail_view_checksum_file_type_stat(client, workdir):
    content = "".join(f"{i}\n" for i in range(1, 13)).encode()
    path = write(f"{workdir}/lines.txt", content)
    assert client.head(SYSTEM, path)["content"] == "".join(f"{i}\n" for i in range(1, 11))
    assert client.head(SYSTEM, path, num_bytes=3)["content"] == "1\n2"
    head = client.head(SYSTEM, path, num_lines=10, exclude_trailing=True)
    assert (head["content"], head["endPosition"]) == ("1\n2\n", -10)
    assert client.tail(SYSTEM, path, num_lines=2)["content"] == "11\n12\n"
    assert client.tail(SYSTEM, path, num_lines=12, exclude_beginning=True)["content"] == "12\n"
    assert client.tail(SYSTEM, path, num_bytes=3)["contentType"] == "bytes"
    assert client.view(SYSTEM, path) == content.decode()
    checksum = client.checksum(SYSTEM, path)
    assert checksum == {"algorithm": "SHA256", "checksum": hashlib.sha256(content).hexdigest()}
    assert client.file_type(SYSTEM, path) == "ASCII text"
    stat = client.stat(SYSTEM, path)
    assert stat["size"] == len(content) and stat["mode"] == 0o100644 and stat["uid"] == USER.pw_uid
    os.symlink(path, f"{workdir}/link")
    assert client.stat(SYSTEM, f"{workdir}/link", dereference=True)["size"] == len(content)


def test_missing_file_message_is_matched_by_the_client(client, workdir):
    with pytest.raises(UnexpectedStatusException) as err:
        client.head(SYSTEM, f"{workdir}/missing")
    response = err.value.responses[-1]
    assert response.status_code == 404
    assert "No such file or directory" in response.json()["message"]
    # download() stats first and turns that 404 into FileNotFoundError.
    with pytest.raises(FileNotFoundError):
        client.download(SYSTEM, f"{workdir}/missing", f"{workdir}/local", blocking=True)


def test_mkdir_symlink_chmod_chown_rm(client, workdir):
    made = client.mkdir(SYSTEM, f"{workdir}/a/b", create_parents=True)
    assert (made["name"], made["type"]) == (f"{workdir}/a/b", "d")
    target = write(f"{workdir}/t.txt", b"x")
    link = client.symlink(SYSTEM, target, f"{workdir}/l")
    assert link["output"]["linkTarget"] == target
    assert os.readlink(f"{workdir}/l") == target
    assert client.chmod(SYSTEM, target, "700")["permissions"] == "rwx------"
    assert client.chown(SYSTEM, target, "fireuser", USER_GROUP())["user"] == "fireuser"
    client.rm(SYSTEM, f"{workdir}/a")
    assert not os.path.exists(f"{workdir}/a")


def USER_GROUP():
    import grp
    return grp.getgrgid(USER.pw_gid).gr_name


def test_upload_and_download_small_binary_files_byte_exact(client, workdir, tmp_path):
    content = bytes(range(256)) * 1000 + b"\x00\xff tail"
    local = tmp_path / "up.bin"
    local.write_bytes(content)
    client.upload(SYSTEM, str(local), workdir, "up.bin")
    with open(f"{workdir}/up.bin", "rb") as f:
        assert f.read() == content
    target = tmp_path / "down.bin"
    client.download(SYSTEM, f"{workdir}/up.bin", str(target))
    assert target.read_bytes() == content


def test_compress_and_extract(client, workdir):
    os.mkdir(f"{workdir}/src")
    own(f"{workdir}/src")
    write(f"{workdir}/src/a.txt", b"alpha")
    write(f"{workdir}/src/b.log", b"beta")
    for compression, ext in [("none", "tar"), ("gzip", "tar.gz"), ("bzip2", "tar.bz2"), ("xz", "tar.xz")]:
        archive = f"{workdir}/out.{ext}"
        client.compress(SYSTEM, f"{workdir}/src", archive, compression=compression)
        into = f"{workdir}/x-{compression}"
        os.mkdir(into)
        own(into)
        client.extract(SYSTEM, archive, into, compression=compression)
        with open(f"{into}/src/a.txt", "rb") as f:
            assert f.read() == b"alpha"
    client.compress(SYSTEM, f"{workdir}/src", f"{workdir}/p.tar.gz", match_pattern=r".*\.txt")
    os.mkdir(f"{workdir}/p")
    own(f"{workdir}/p")
    client.extract(SYSTEM, f"{workdir}/p.tar.gz", f"{workdir}/p")
    assert os.path.exists(f"{workdir}/p/src/a.txt") and not os.path.exists(f"{workdir}/p/src/b.log")
