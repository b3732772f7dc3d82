"""The run CA and server certificates: chain, SANs, key files."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshsim.homeserver.certs import CertificateAuthority


def test_server_cert_is_signed_by_ca_with_sans(tmp_path):
    ca = CertificateAuthority.create()
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    ca.write_server_cert("synapse3", "10.99.0.4", crt, key)
    certs = x509.load_pem_x509_certificates(crt.read_bytes())
    leaf = certs[0]
    assert certs[1] == ca.cert
    leaf.verify_directly_issued_by(ca.cert)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["synapse3"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.99.0.4")]
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # OpenSSL accepts the pair as a server identity, and a client trusting the CA verifies it.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(crt, key)
    client = ssl.create_default_context(cadata=ca.cert_pem().decode())
    a, b = socket.socketpair()
    with a, b:
        t = threading.Thread(target=lambda: server.wrap_socket(a, server_side=True).do_handshake())
        t.start()
        tls = client.wrap_socket(b, server_hostname="synapse3")  # verifies chain and hostname
        t.join(5)
        assert tls.getpeercert()["subjectAltName"][0] == ("DNS", "synapse3")


def test_ca_load_or_create_is_stable(tmp_path):
    a = CertificateAuthority.load_or_create(tmp_path / "ca.crt", tmp_path / "ca.key")
    b = CertificateAuthority.load_or_create(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert a.cert == b.cert
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    assert a.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
