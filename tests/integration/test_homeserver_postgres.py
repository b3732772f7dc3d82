"""The private PostgreSQL cluster: socket only, idempotent lifecycle, databases with C collation."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from meshsim.homeserver.postgres import PostgresCluster

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture
def cluster():
    d = Path(tempfile.mkdtemp(prefix="mspg-", dir="/tmp"))
    os.chmod(d, 0o755)
    c = PostgresCluster(d / "data", d / "sock", max_connections=20)
    yield c
    c.destroy()
    shutil.rmtree(d, ignore_errors=True)


def test_lifecycle_databases_and_capacity(cluster: PostgresCluster):
    assert not cluster.running()
    cluster.start()
    cluster.start()  # idempotent
    assert cluster.running()
    # postmaster.pid line 6 is the first listen address: empty means no TCP socket at all.
    lines = (cluster.data_dir / "postmaster.pid").read_text().splitlines()
    assert lines[4] == str(cluster.socket_dir) and lines[5] == ""
    assert (cluster.socket_dir / ".s.PGSQL.5432").is_socket()

    assert cluster.create_database("synapse0") is True
    assert cluster.create_database("synapse0") is False
    with cluster.connect("synapse0") as conn, conn.cursor() as cur:
        cur.execute("SELECT datcollate, datctype, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s",
                    ("synapse0",))  # fmt: skip
        assert cur.fetchone() == ("C", "C", "UTF8")
    conn.close()
    with pytest.raises(ValueError):
        cluster.create_database("bad name; DROP")

    assert cluster.ensure_capacity(10) is False  # already enough
    assert cluster.ensure_capacity(50) is True  # grows: restart
    conn = cluster.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW max_connections")
        assert cur.fetchone() == ("50",)
    conn.close()
    assert "synapse0" in cluster.databases()  # data survives the restart

    cluster.drop_database("synapse0")
    cluster.drop_database("synapse0")
    assert "synapse0" not in cluster.databases()
    cluster.stop()
    cluster.stop()
    assert not cluster.running()
    cluster.start()  # restarts on the existing data dir
    assert cluster.running()
