"""The official pyfirecrest v2 client against the Ironcrest started by `scripts/dev-env up`."""

import time

import firecrest
import pytest

SYSTEM = "cluster-slurm-ssh"


def test_systems_report_every_probed_service_healthy(client):
    deadline = time.monotonic() + 60
    while True:
        systems = {s["name"]: s for s in client.systems()}
        health = systems[SYSTEM]["servicesHealth"]
        if health or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {h["serviceType"] for h in health} == {"scheduler", "ssh", "filesystem", "s3"}
    assert all(h["healthy"] for h in health), health
    assert systems[SYSTEM]["fileSystems"] == [
        {"path": "/home", "dataType": "users", "defaultWorkDir": True}
    ]
    # The API level, parseable: pyfirecrest gates its features on it.
    assert client.server_version() == "2.6.0"


def test_partitions(client):
    partitions = client.partitions(SYSTEM)
    assert [p["name"] for p in partitions] == ["normal", "debug"]
    assert all(p["partition"] == "UP" for p in partitions)


def test_nodes(client):
    nodes = client.nodes(SYSTEM)
    assert [n["name"] for n in nodes] == ["localhost"]
    assert sorted(nodes[0]["partitions"]) == ["debug", "normal"]
    assert nodes[0]["cpus"] == 2


def test_reservations(client):
    reservations = client.reservations(SYSTEM)
    names = [r["name"] for r in reservations]
    assert "fire_resv" in names
    resv = reservations[names.index("fire_resv")]
    assert resv["nodeList"] == "localhost"
    assert resv["state"] == "active"


def test_userinfo(client):
    info = client.userinfo(SYSTEM)
    assert info["user"]["name"] == "fireuser"
    assert info["user"]["id"].isdigit()
    assert "hpcusers" in [g["name"] for g in info["groups"]]
    accounts = {a["name"]: a["default"] for a in info["accounts"]}
    # staff and project1, and one account per Unix group (scripts/dev-env ensure_accounts).
    assert accounts == {"staff": True, "project1": False, "fireuser": False, "hpcusers": False}


def test_unknown_system_is_404(client):
    with pytest.raises(firecrest.FirecrestException) as excinfo:
        client.partitions("no-such-system")
    assert excinfo.value.responses[-1].status_code == 404
