"""Throw-away TLS material for the ZEO-over-TLS tests (openssl binary).

:func:`make_certs` writes a CA, a server and a client certificate signed
by it, and a second ("rogue") CA with a client certificate of its own,
which a server that trusts only the first CA must refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
#: ``openssl req`` arguments for the new key
RSA = ('-newkey', 'rsa:2048')
EC = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1')


def openssl(*args, cwd) -> None:
    subprocess.run(
        ['openssl', *args], cwd=cwd, check=True, capture_output=True,
        timeout=60,
    )


def make_ca(directory, name: str, key: tuple = RSA) -> None:
    """``name.pem`` / ``name.key``: a self-signed CA, valid two days."""
    openssl(
        'req', '-x509', *key, '-nodes', '-days', '2',
        '-subj', f'/CN=test {name}', '-keyout', f'{name}.key',
        '-out', f'{name}.pem',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
        cwd=directory,
    )


def make_cert(
    directory,
    ca: str,
    name: str,
    host: str = 'localhost',
    san: str = 'DNS:localhost, IP:127.0.0.1',
    key: tuple = RSA,
) -> None:
    """``name.pem`` / ``name.key`` for ``host`` (and the names of
    ``san``), signed by ``ca``; good for a server and for a client."""
    with open(os.path.join(str(directory), f'{name}.ext'), 'w') as f:
        f.write(EXT.format(san=san))
    openssl(
        'req', *key, '-nodes', '-subj', f'/CN={host}',
        '-keyout', f'{name}.key', '-out', f'{name}.csr', cwd=directory,
    )
    openssl(
        'x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem',
        '-CAkey', f'{ca}.key', '-CAcreateserial', '-days', '2',
        '-extfile', f'{name}.ext', '-out', f'{name}.pem', cwd=directory,
    )


@dataclass(frozen=True)
class Certs:
    """Paths of the files :func:`make_certs` wrote."""

    dir: str

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def ca(self) -> str:
        return self.path('ca.pem')

    def server_ssl_block(self) -> str:
        """The ``<ssl>`` section of a zeo.conf ``<zeo>``: the server's
        certificate, and the CA its clients' certificates must chain to
        (``authenticate``: ZEO then requires a client certificate)."""
        return (
            '<ssl>\n'
            f'    certificate {self.path("server.pem")}\n'
            f'    key {self.path("server.key")}\n'
            f'    authenticate {self.ca}\n'
            '  </ssl>'
        )

    def client_query(self, client: str | None = 'client') -> str:
        """``zeo://`` parameters: trust our CA, check the name
        ``localhost``, and present ``client`` (none if ``None``)."""
        query = f'ssl_cafile={self.ca}&ssl_server_hostname=localhost'
        if client:
            query += (
                f'&ssl_certfile={self.path(client + ".pem")}'
                f'&ssl_keyfile={self.path(client + ".key")}'
            )
        return query


def make_certs(directory) -> Certs:
    """CA ``ca``: ``server`` and ``client``; CA ``rogue``: ``intruder``."""
    if shutil.which('openssl') is None:  # pragma: no cover - environment
        pytest.skip('the openssl binary is not installed')
    directory = str(directory)
    make_ca(directory, 'ca')
    make_cert(directory, 'ca', 'server')
    make_cert(directory, 'ca', 'client')
    make_ca(directory, 'rogue')
    make_cert(directory, 'rogue', 'intruder')
    return Certs(directory)
