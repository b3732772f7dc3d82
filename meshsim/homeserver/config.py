"""Pure builders for one Synapse server's files: homeserver.yaml, its log config, the hosts file.

Nothing here touches the disk or starts a process. `ServerPaths` names every file of a server
below its data directory; `synapse_config` returns the homeserver.yaml as a dict.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshsim.kernel import names

FEDERATION_PORT = 443
MESH_SUBNET = str(names.MESH_NET)
TELEMETRY_MODULE = "meshsim.homeserver.telemetry.TelemetryModule"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the NUL

# Rate limits high enough that a busy emulated mesh never trips them.
_FAST = {"per_second": 10000, "burst_count": 100000}
RATE_LIMITS: dict[str, Any] = {
    "rc_message": _FAST,
    "rc_registration": _FAST,
    "rc_registration_token_validity": _FAST,
    "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
    "rc_admin_redaction": _FAST,
    "rc_joins": {"local": _FAST, "remote": _FAST},
    "rc_joins_per_room": _FAST,
    "rc_key_requests": _FAST,
    "rc_3pid_validation": _FAST,
    "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
    "rc_third_party_invite": _FAST,
    "rc_media_create": _FAST,
    "rc_presence": {"per_user": _FAST},
    "rc_delayed_event_mgmt": _FAST,
    "rc_room_creation": _FAST,
    "rc_reports": _FAST,
    "rc_user_directory": _FAST,
    "rc_profile": _FAST,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100000,
        "sleep_delay": 1,
        "reject_limit": 1000000,
        "concurrent": 1000,
    },
}

# Back off from unreachable destinations for seconds, not days: links heal in an emulation.
FEDERATION_RETRY: dict[str, Any] = {
    "client_timeout": "60s",
    "destination_min_retry_interval": "2s",
    "destination_retry_multiplier": 2,
    "destination_max_retry_interval": "60s",
}


def server_id_of(server_name: str) -> int | None:
    """`synapse12` -> 12; anything else (other naming, a port, another server kind) -> None."""
    head = "synapse"
    tail = server_name[len(head) :]
    if server_name.startswith(head) and tail.isdigit() and (tail == "0" or not tail.startswith("0")):
        return int(tail)
    return None


@dataclass(frozen=True)
class ServerPaths:
    """Where server N keeps everything, all below `data_dir`."""

    data_dir: Path

    @property
    def config(self) -> Path:
        return self.data_dir / "homeserver.yaml"

    @property
    def log_config(self) -> Path:
        return self.data_dir / "log.yaml"

    @property
    def signing_key(self) -> Path:
        return self.data_dir / "signing.key"

    @property
    def tls_cert(self) -> Path:
        return self.data_dir / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.data_dir / "tls.key"

    @property
    def media_store(self) -> Path:
        return self.data_dir / "media"

    @property
    def client_socket(self) -> Path:
        return self.data_dir / "client.sock"

    @property
    def metrics_socket(self) -> Path:
        return self.data_dir / "metrics.sock"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "homeserver.pid"

    @property
    def homeserver_log(self) -> Path:
        return self.data_dir / "homeserver.log"

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the process (tracebacks before logging is set up)."""
        return self.data_dir / "console.log"

    @property
    def sqlite_db(self) -> Path:
        return self.data_dir / "homeserver.db"

    def check_socket_paths(self) -> None:
        """UNIX socket paths are limited to 107 bytes: fail early with the path, not deep in Twisted."""
        for p in (self.client_socket, self.metrics_socket):
            if len(str(p).encode()) > UNIX_PATH_MAX:
                raise ValueError(f"UNIX socket path too long ({len(str(p))} > {UNIX_PATH_MAX}): {p}")


@dataclass(frozen=True)
class PostgresDB:
    """psycopg2 over the cluster's UNIX socket directory; trust auth, so no password."""

    socket_dir: str
    dbname: str
    user: str = "postgres"
    cp_min: int = 1
    cp_max: int = 3


@dataclass(frozen=True)
class SqliteDB:
    path: str


@dataclass(frozen=True)
class Secrets:
    """Per-run secrets; `registration_shared_secret` lets meshsim create users over the admin API."""

    registration_shared_secret: str
    macaroon_secret_key: str
    form_secret: str

    @classmethod
    def fresh(cls) -> Secrets:
        return cls(secrets.token_hex(24), secrets.token_hex(24), secrets.token_hex(24))


def database_section(db: PostgresDB | SqliteDB) -> dict[str, Any]:
    if isinstance(db, SqliteDB):
        return {"name": "sqlite3", "args": {"database": db.path}}
    return {
        "name": "psycopg2",
        "args": {
            "user": db.user,
            "dbname": db.dbname,
            "host": db.socket_dir,
            "cp_min": db.cp_min,
            "cp_max": db.cp_max,
        },
    }


def synapse_config(
    *,
    server_id: int,
    paths: ServerPaths,
    database: PostgresDB | SqliteDB,
    secrets: Secrets,
    telemetry_socket: str | None,
    public_baseurl: str | None = None,
    presence: bool = False,
    cache_factor: float = 0.5,
) -> dict[str, Any]:
    """homeserver.yaml for server `server_id` as a dict (dump it with yaml.safe_dump).

    Federation: TLS on 443 at the node's mesh address, well-known answering `synapseN:443`
    so no SRV lookup happens. Client API and metrics: UNIX sockets in the data dir, so the
    host reaches them without a route into the mesh.
    """
    address = names.address(server_id)
    server_name = names.server_name(server_id)
    resources = [{"names": ["client", "federation"], "compress": False}]
    cfg: dict[str, Any] = {
        "server_name": server_name,
        "pid_file": str(paths.pid_file),
        "public_baseurl": public_baseurl or f"https://{server_name}/",
        "serve_server_wellknown": True,
        "listeners": [
            {
                "port": FEDERATION_PORT,
                "bind_addresses": [address],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                "resources": resources,
            },
            {
                "path": str(paths.client_socket),
                "mode": 0o666,
                "type": "http",
                "x_forwarded": True,
                "resources": resources,
            },
            {
                "path": str(paths.metrics_socket),
                "mode": 0o666,
                "type": "http",
                "resources": [{"names": ["metrics"]}],
            },
        ],
        "tls_certificate_path": str(paths.tls_cert),
        "tls_private_key_path": str(paths.tls_key),
        "federation_verify_certificates": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "ip_range_whitelist": [MESH_SUBNET],
        "federation": dict(FEDERATION_RETRY),
        "database": database_section(database),
        "log_config": str(paths.log_config),
        "media_store_path": str(paths.media_store),
        "signing_key_path": str(paths.signing_key),
        "registration_shared_secret": secrets.registration_shared_secret,
        "macaroon_secret_key": secrets.macaroon_secret_key,
        "form_secret": secrets.form_secret,
        "enable_registration": False,
        "report_stats": False,
        "enable_metrics": True,
        "url_preview_enabled": False,
        "allow_public_rooms_over_federation": True,
        "allow_public_rooms_without_auth": True,
        "presence": {"enabled": presence},
        "caches": {"global_factor": cache_factor},
        "modules": [],
        **RATE_LIMITS,
    }
    if telemetry_socket is not None:
        cfg["modules"].append(
            {"module": TELEMETRY_MODULE, "config": {"socket": telemetry_socket, "server_id": server_id}}
        )
    return cfg


def log_config(paths: ServerPaths, *, level: str = "INFO", max_bytes: int = 20_000_000) -> dict[str, Any]:
    """Python logging dictConfig for Synapse: one rotating file in the data dir, SQL noise off."""
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
            }
        },
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
        "handlers": {
            "file": {
                "class": "logging.handlers.RotatingFileHandler",
                "formatter": "precise",
                "filename": str(paths.homeserver_log),
                "maxBytes": max_bytes,
                "backupCount": 1,
                "encoding": "utf8",
                "filters": ["context"],
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"}, "synapse.access": {"level": "WARNING"}},
        "root": {"level": level, "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def hosts_file(max_id: int) -> str:
    """An /etc/hosts naming synapse0..synapse{max_id} at their mesh addresses (plus localhost)."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{names.address(i)} {names.server_name(i)}" for i in range(max_id + 1)]
    return "\n".join(lines) + "\n"
