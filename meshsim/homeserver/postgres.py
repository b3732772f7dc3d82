"""A private PostgreSQL cluster owned by meshsim: UNIX socket only, one database per homeserver.

The cluster lives in its own data directory and never touches the system cluster or its
configuration. It listens on no TCP address (`listen_addresses = ''`), only on a socket in
`socket_dir`, which every network namespace can reach because it is a path in the shared
filesystem. Local connections use trust auth as the `postgres` superuser, so the socket
directory is 0700 (owner postgres): only root (the homeservers) and postgres can connect.

Durable but fast: fsync and full_page_writes stay on, so a crash or reboot never corrupts a
database; synchronous_commit is off, so a host crash may lose the last fraction of a second of
writes. Stopping the cluster (also from `meshsim clean`) is a fast shutdown, which loses nothing.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
from pathlib import Path

import psycopg2
from psycopg2 import sql

from meshsim.homeserver import _run

OS_USER = "postgres"
SUPERUSER = "postgres"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INCLUDE = "include 'meshsim.conf'"


class PostgresError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL binaries (/usr/lib/postgresql/*/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresError(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt install postgresql)"
        )
    return Path(found[-1]).parent


def _check_traversable(path: Path, uid: int) -> None:
    """Every ancestor must let the postgres user through (pytest's tmp dirs are 0700 root)."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise PostgresError(
                f"{parent} (mode {oct(st.st_mode & 0o777)}) is not traversable by user {OS_USER}"
            )


class PostgresCluster:
    """One cluster; every method is idempotent. Call `start()` (it runs initdb the first time)."""

    def __init__(
        self,
        data_dir: Path | str,
        socket_dir: Path | str,
        *,
        max_connections: int = 100,
        shared_buffers: str = "64MB",
        port: int = 5432,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.socket_dir = Path(socket_dir)
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self.port = port
        self._bin_dir = bin_dir
        self.log_path = self.data_dir / "postgres.log"

    def _bin(self, name: str) -> str:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return str(self._bin_dir / name)

    # -- lifecycle -----------------------------------------------------------------------------

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb (UTF8, C locale, trust auth on the socket) and write our config; no-op if done."""
        pw = pwd.getpwnam(OS_USER)
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
            _check_traversable(d, pw.pw_uid)
        os.chmod(self.data_dir, 0o700)
        os.chmod(self.socket_dir, 0o700)
        if not self.initialized():
            _run.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=reject",
                    "--no-sync",
                    "--no-instructions",
                ],
                user=OS_USER,
                timeout=120,
            )
            (self.data_dir / "pg_hba.conf").write_text("local all all trust\n")
            conf = self.data_dir / "postgresql.conf"
            conf.write_text(conf.read_text() + f"\n{_INCLUDE}\n")
        self._write_conf()

    def _conf_text(self) -> str:
        return "\n".join(
            [
                "listen_addresses = ''",
                f"port = {self.port}",
                f"unix_socket_directories = '{self.socket_dir}'",
                "unix_socket_permissions = 0700",
                f"max_connections = {self.max_connections}",
                f"shared_buffers = {self.shared_buffers}",
                "synchronous_commit = off",
                "logging_collector = off",
                "log_min_messages = warning",
                "",
            ]
        )

    def _write_conf(self) -> None:
        path = self.data_dir / "meshsim.conf"
        path.write_text(self._conf_text())
        pw = pwd.getpwnam(OS_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    def running(self) -> bool:
        if not self.initialized():
            return False
        res = _run.run(
            [self._bin("pg_ctl"), "status", "-D", str(self.data_dir)], user=OS_USER, check=False, timeout=30
        )
        return res.returncode == 0

    def start(self) -> None:
        self.init()
        if self.running():
            return
        _run.run(
            [
                self._bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
            ],
            user=OS_USER,
            timeout=90,
        )

    def stop(self) -> None:
        if self.running():
            _run.run(
                [self._bin("pg_ctl"), "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir)],
                user=OS_USER,
                timeout=90,
            )

    def ensure_capacity(self, max_connections: int) -> bool:
        """Grow max_connections to at least this (restarting if running); True if it restarted."""
        if max_connections <= self.max_connections:
            return False
        self.max_connections = max_connections
        if not self.initialized():
            return False
        self._write_conf()
        if not self.running():
            return False
        _run.run(
            [
                self._bin("pg_ctl"),
                "restart",
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
            ],
            user=OS_USER,
            timeout=120,
        )
        return True

    def destroy(self) -> None:
        """Stop and delete the data and socket directories."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------------

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname)
        conn.autocommit = True
        return conn

    def databases(self) -> set[str]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cur.fetchall()}

    def create_database(self, name: str) -> bool:
        """CREATE DATABASE (UTF8, C collation, template0) unless it exists; True if created."""
        _check_db_name(name)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(
                    sql.SQL(
                        "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                    ).format(sql.Identifier(name))
                )
                return True
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS, disconnecting its clients first."""
        _check_db_name(name)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            conn.close()


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name) or name in {"postgres", "template0", "template1"}:
        raise ValueError(f"invalid database name {name!r}")
