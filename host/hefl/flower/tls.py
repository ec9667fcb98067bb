"""TLS certificates for a loopback Flower federation, made with ``cryptography``.

Flower's SuperLink serves its Fleet, Control and Runtime APIs over TLS
when it is given a server certificate, its key and the CA that signed it
(``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-ca-certfile``); SuperNodes
(``--root-certificates``), ``flwr run`` (``root-certificates`` in the
connection of ``$FLWR_HOME/config.toml``) and the SuperLink's own SuperExec
verify the server against that CA.

:func:`make_loopback_certificates` writes what the local federation of
:mod:`hefl.flower.launch` needs: a fresh CA and a server certificate valid
for ``127.0.0.1`` and ``localhost`` only, both ECDSA P-256, for a few days.
The private keys are written 0600 and never leave the run's folder. Across
real machines use certificates of the site's own CA for the SuperLink's
host name instead (Flower's ``--ssl-*`` options are the same).
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Certificates", "make_loopback_certificates", "write_private_key", "LOOPBACK_NAMES"]

#: what the server certificate is valid for
LOOPBACK_NAMES = ("127.0.0.1", "localhost")

# Long enough for any demo or test run, short enough to be useless later.
_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Certificates:
    """Paths of one loopback TLS setup (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def write_private_key(path, key, *, openssh=False):
    """Write ``key`` unencrypted, created 0600 (never world-readable); returns the path.

    PKCS#8 PEM by default; ``openssh=True`` for the OpenSSH form Flower's
    ``--auth-supernode-private-key`` reads.
    """
    fmt = serialization.PrivateFormat.OpenSSH if openssh else serialization.PrivateFormat.PKCS8
    data = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    path = Path(path)
    path.unlink(missing_ok=True)
    # O_EXCL with mode 0600: the file never exists with wider permissions.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject, issuer, public_key, now):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY))


def make_loopback_certificates(directory):
    """Write a CA and a ``127.0.0.1``/``localhost`` server certificate to ``directory``.

    Returns
    -------
    Certificates
        ``ca.pem``, ``server.pem`` and ``server.key`` (0600) in ``directory``.
        The CA's private key signs the server certificate and is then
        discarded: nothing else can ever be signed by this CA.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("hefl loopback federation CA")
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), now)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(LOOPBACK_NAMES[0])),
            x509.DNSName(LOOPBACK_NAMES[1])]
    server = (_builder(_name(LOOPBACK_NAMES[0]), ca_name, key.public_key(), now)
              .add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    certs = Certificates(d / "ca.pem", d / "server.pem", d / "server.key")
    certs.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    write_private_key(certs.server_key, key)
    return certs
