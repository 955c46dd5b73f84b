"""OPC UA security against asyncua's server on 127.0.0.1: Basic256Sha256 Sign and SignAndEncrypt
with certificates made here, the server certificate as the trust anchor, username/password
from a file."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.errors import SourceUnavailable
from tests.services.ports import free_port
from tests.support.opcua_peer import GOOD, OpcUaPeer, collect, latest, make

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def make_cert(tmp: Path, stem: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
    """A self-signed OPC UA application certificate (DER) and its key (PEM)."""
    key = generate_private_key()
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
    ]
    cert = generate_self_signed_app_certificate(key, stem, {}, sans, extended=[usage], days=2)
    cert_path, key_path = tmp / f"{stem}.der", tmp / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


@pytest.fixture
async def secure_peer(tmp_path: Path) -> AsyncIterator[tuple[OpcUaPeer, Path]]:
    server_cert, server_key = make_cert(tmp_path, "server", "urn:emgate:test:server", ExtendedKeyUsageOID.SERVER_AUTH)
    peer = OpcUaPeer(
        free_port(),
        security=[
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ],
        certificate=server_cert,
        private_key=server_key,
        users={"reader": "s3cret"},
    )
    await peer.start()
    try:
        yield peer, server_cert
    finally:
        await peer.stop()
        peer.forget()


def client_files(tmp: Path) -> tuple[Path, Path]:
    return make_cert(tmp, "client", "urn:emgate:test:client", ExtendedKeyUsageOID.CLIENT_AUTH)


async def read_once(server: dict[str, Any], peer: OpcUaPeer) -> dict[str, tuple[float, int]]:
    src, queue, signals = make({"url": peer.url, "mode": "poll", "poll_s": 0.1, **server}, {f"ns={peer.ns};i=1001": "flow"})
    async with src:
        task = asyncio.create_task(src.run())
        try:
            return latest(await collect(queue, signals, lambda s: len(s) >= 1))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_basic256sha256_with_a_password_from_a_file(secure_peer: tuple[OpcUaPeer, Path], tmp_path: Path, mode: str) -> None:
    peer, server_cert = secure_peer
    cert, key = client_files(tmp_path)
    secret = tmp_path / "opcua-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    got = await read_once(
        {
            "security_policy": "Basic256Sha256",
            "security_mode": mode,
            "certificate_file": str(cert),
            "private_key_file": str(key),
            "server_certificate_file": str(server_cert),
            "username": "reader",
            "password_file": str(secret),
        },
        peer,
    )
    assert got == {"flow": (10.0, GOOD)}


async def test_no_security_and_a_wrong_password_are_refused(secure_peer: tuple[OpcUaPeer, Path], tmp_path: Path) -> None:
    peer, server_cert = secure_peer
    cert, key = client_files(tmp_path)
    with pytest.raises(SourceUnavailable, match="connect failed"):
        await read_once({"username": "reader", "password": "s3cret"}, peer)  # the server offers no None endpoint
    with pytest.raises(SourceUnavailable, match="connect failed"):
        await read_once(
            {
                "security_policy": "Basic256Sha256",
                "security_mode": "SignAndEncrypt",
                "certificate_file": str(cert),
                "private_key_file": str(key),
                "server_certificate_file": str(server_cert),
                "username": "reader",
                "password": "wrong",
            },
            peer,
        )


async def test_a_server_with_another_certificate_is_not_trusted(secure_peer: tuple[OpcUaPeer, Path], tmp_path: Path) -> None:
    peer, _ = secure_peer
    cert, key = client_files(tmp_path)
    other, _ = make_cert(tmp_path, "impostor", "urn:emgate:test:server", ExtendedKeyUsageOID.SERVER_AUTH)
    with pytest.raises(SourceUnavailable, match="connect failed"):
        await read_once(
            {
                "security_policy": "Basic256Sha256",
                "security_mode": "SignAndEncrypt",
                "certificate_file": str(cert),
                "private_key_file": str(key),
                "server_certificate_file": str(other),
                "username": "reader",
                "password": "s3cret",
            },
            peer,
        )


async def test_a_trust_list_directory_admits_only_its_certificates(secure_peer: tuple[OpcUaPeer, Path], tmp_path: Path) -> None:
    peer, server_cert = secure_peer
    cert, key = client_files(tmp_path)
    trusted, untrusted = tmp_path / "trusted", tmp_path / "untrusted"
    trusted.mkdir()
    untrusted.mkdir()
    (trusted / "dcs.der").write_bytes(server_cert.read_bytes())
    other, _ = make_cert(tmp_path, "impostor", "urn:emgate:test:server", ExtendedKeyUsageOID.SERVER_AUTH)
    (untrusted / "other.der").write_bytes(other.read_bytes())
    server = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate_file": str(cert),
        "private_key_file": str(key),
        "username": "reader",
        "password": "s3cret",
    }
    assert await read_once({**server, "server_trust_dir": str(trusted)}, peer) == {"flow": (10.0, GOOD)}
    activations = peer.services.count("ActivateSessionRequest")
    with pytest.raises(SourceUnavailable, match="BadCertificateUntrusted"):
        await read_once({**server, "server_trust_dir": str(untrusted)}, peer)
    assert peer.services.count("ActivateSessionRequest") == activations  # no password went to that server
