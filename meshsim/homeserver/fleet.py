"""What all homeservers of a run share: CA, secrets, the PostgreSQL cluster, the directory layout.

{run_dir}/ca.crt, ca.key          the run's certificate authority
{run_dir}/pg/data, pg/sock        the PostgreSQL cluster (database backend "postgres")
{run_dir}/servers/{N}/            server N's data dir (config, keys, logs, media, sockets)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from meshsim.homeserver.certs import CertificateAuthority
from meshsim.homeserver.config import Secrets
from meshsim.homeserver.postgres import PostgresCluster
from meshsim.homeserver.process import StateCallback, SynapseServer, SynapseSpec

Backend = Literal["postgres", "sqlite"]


class HomeserverFleet:
    def __init__(
        self,
        run_dir: Path | str,
        *,
        database: Backend = "postgres",
        telemetry_socket: str | None = None,
        max_servers: int = 128,  # growing past it restarts PostgreSQL, failing servers that are mid-boot
        cp_max: int = 3,
        python: str = sys.executable,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.database = database
        self.telemetry_socket = telemetry_socket
        self.cp_max = cp_max
        self.python = python
        self.extra_config = extra_config or {}
        self.secrets = Secrets.fresh()
        self.max_servers = max_servers
        self.postgres: PostgresCluster | None = None
        if database == "postgres":
            self.postgres = PostgresCluster(
                self.run_dir / "pg" / "data",
                self.run_dir / "pg" / "sock",
                max_connections=self._connections_for(max_servers),
            )
        self._ca: CertificateAuthority | None = None
        self._ids: set[int] = set()

    def _connections_for(self, n: int) -> int:
        # Synapse holds up to cp_max pooled connections; leave room for admin connections.
        return max(100, n * (self.cp_max + 1) + 10)

    @property
    def ca(self) -> CertificateAuthority:
        if self._ca is None:
            self._ca = CertificateAuthority.load_or_create(self.run_dir / "ca.crt", self.run_dir / "ca.key")
        return self._ca

    def start(self) -> None:
        """Create the run dir and start PostgreSQL (blocking, ~0.6 s the first time)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)  # the postgres user must traverse it
        _ = self.ca
        if self.postgres is not None:
            self.postgres.start()

    def ensure_capacity(self, n_servers: int) -> None:
        """Make room for n servers' connections (restarts PostgreSQL only if it must grow)."""
        if n_servers > self.max_servers:
            self.max_servers = max(n_servers, 2 * self.max_servers)
            if self.postgres is not None:
                self.postgres.ensure_capacity(self._connections_for(self.max_servers))

    def data_dir(self, server_id: int) -> Path:
        return self.run_dir / "servers" / str(server_id)

    def server(self, server_id: int, netns: str, on_state: StateCallback | None = None) -> SynapseServer:
        """A handle for server N in namespace `netns` (call prepare/start on it)."""
        self._ids.add(server_id)
        self.ensure_capacity(len(self._ids))
        spec = SynapseSpec(
            server_id=server_id,
            netns=netns,
            data_dir=self.data_dir(server_id),
            secrets=self.secrets,
            postgres=self.postgres,
            telemetry_socket=self.telemetry_socket,
            python=self.python,
            cp_max=self.cp_max,
            extra_config=self.extra_config,
        )
        return SynapseServer(spec, self.ca, on_state)

    def drop_server_data(self, server_id: int) -> None:
        """Forget a removed server's database (its data dir is left for post-mortem)."""
        self._ids.discard(server_id)
        if self.postgres is not None and self.postgres.running():
            self.postgres.drop_database(f"synapse{server_id}")

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
