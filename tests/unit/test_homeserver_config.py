"""homeserver.yaml builder: the settings federation over the emulated mesh depends on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshsim.homeserver.config import (
    PostgresDB,
    Secrets,
    ServerPaths,
    SqliteDB,
    hosts_file,
    log_config,
    server_id_of,
    synapse_config,
)

PATHS = ServerPaths(Path("/var/lib/meshsim/runs/a3f9/servers/7"))


def build(**kw):
    args = dict(
        server_id=7,
        paths=PATHS,
        database=PostgresDB("/run/pg", "synapse7"),
        secrets=Secrets("reg", "mac", "form"),
        telemetry_socket="/run/t.sock",
    )
    args.update(kw)
    return synapse_config(**args)


def test_federation_listener_is_tls_443_on_mesh_address_with_wellknown():
    cfg = build()
    assert cfg["server_name"] == "synapse7"
    assert cfg["serve_server_wellknown"] is True
    fed = cfg["listeners"][0]
    assert fed["port"] == 443 and fed["tls"] is True
    assert fed["bind_addresses"] == ["10.99.0.8"]
    names = fed["resources"][0]["names"]
    assert "federation" in names and "client" in names  # client carries /.well-known
    assert cfg["tls_certificate_path"] == str(PATHS.tls_cert)
    assert cfg["federation_verify_certificates"] is False
    assert cfg["trusted_key_servers"] == []
    assert cfg["suppress_key_server_warning"] is True
    assert cfg["ip_range_whitelist"] == ["10.99.0.0/16"]


def test_client_and_metrics_listen_on_unix_sockets():
    cfg = build()
    client, metrics = cfg["listeners"][1], cfg["listeners"][2]
    assert client["path"] == str(PATHS.client_socket) and "port" not in client
    assert client["x_forwarded"] is True
    assert "client" in client["resources"][0]["names"]
    assert metrics["path"] == str(PATHS.metrics_socket)
    assert metrics["resources"] == [{"names": ["metrics"]}]
    assert cfg["enable_metrics"] is True


def test_secrets_rate_limits_and_misc():
    cfg = build()
    assert cfg["registration_shared_secret"] == "reg"
    assert cfg["report_stats"] is False
    assert cfg["enable_registration"] is False
    assert cfg["rc_message"]["per_second"] >= 1000
    assert cfg["rc_joins"]["remote"]["burst_count"] >= 1000
    assert cfg["rc_federation"]["reject_limit"] >= 10000
    assert cfg["federation"]["destination_max_retry_interval"] == "60s"
    assert cfg["signing_key_path"] == str(PATHS.signing_key)
    assert cfg["media_store_path"] == str(PATHS.media_store)
    assert cfg["log_config"] == str(PATHS.log_config)


def test_fresh_secrets_differ():
    a, b = Secrets.fresh(), Secrets.fresh()
    assert a.registration_shared_secret != b.registration_shared_secret
    assert len({a.registration_shared_secret, a.macaroon_secret_key, a.form_secret}) == 3


def test_postgres_database_over_socket():
    db = build(database=PostgresDB("/run/pg", "synapse7", cp_max=2))["database"]
    assert db["name"] == "psycopg2"
    assert db["args"] == {
        "user": "postgres",
        "dbname": "synapse7",
        "host": "/run/pg",
        "cp_min": 1,
        "cp_max": 2,
    }


def test_sqlite_database():
    assert build(database=SqliteDB("/x/h.db"))["database"] == {
        "name": "sqlite3",
        "args": {"database": "/x/h.db"},
    }


def test_telemetry_module_configured_or_absent():
    assert build()["modules"] == [
        {
            "module": "meshsim.homeserver.telemetry.TelemetryModule",
            "config": {"socket": "/run/t.sock", "server_id": 7},
        }
    ]
    assert build(telemetry_socket=None)["modules"] == []


def test_config_is_yaml_serialisable_and_synapse_parses_it(tmp_path):
    from signedjson.key import generate_signing_key, write_signing_keys
    from synapse.config.homeserver import HomeServerConfig

    from meshsim.homeserver.certs import CertificateAuthority

    paths = ServerPaths(tmp_path)
    with open(paths.signing_key, "w") as f:
        write_signing_keys(f, [generate_signing_key("a_1")])
    CertificateAuthority.create().write_server_cert("synapse7", "10.99.0.8", paths.tls_cert, paths.tls_key)
    cfg = build(paths=paths, database=SqliteDB(str(paths.sqlite_db)), telemetry_socket=None)
    paths.log_config.write_text(yaml.safe_dump(log_config(paths)))
    text = yaml.safe_dump(cfg)
    parsed = HomeServerConfig()
    parsed.parse_config_dict(yaml.safe_load(text), str(tmp_path), str(tmp_path))
    assert parsed.server.server_name == "synapse7"
    assert parsed.server.serve_server_wellknown is True
    assert any(getattr(lst, "path", None) == str(paths.client_socket) for lst in parsed.server.listeners)
    assert parsed.ratelimiting.rc_message.per_second >= 1000
    assert parsed.metrics.enable_metrics


def test_hosts_file_maps_every_server():
    text = hosts_file(300)
    lines = text.splitlines()
    assert "10.99.0.1 synapse0" in lines
    assert "10.99.1.0 synapse255" in lines
    assert "10.99.1.45 synapse300" in lines
    assert "synapse301" not in text
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("synapse0", 0), ("synapse12", 12), ("synapse012", None), ("synapse", None), ("synapse1:8448", None),
     ("hs1", None), ("synapse-1", None)],
)  # fmt: skip
def test_server_id_of(name, expected):
    assert server_id_of(name) == expected


def test_socket_path_length_checked():
    ServerPaths(Path("/tmp/x")).check_socket_paths()
    with pytest.raises(ValueError, match="too long"):
        ServerPaths(Path("/tmp/" + "d" * 100)).check_socket_paths()
