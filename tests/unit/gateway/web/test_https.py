"""The dashboard over HTTPS: a self-signed certificate served by start_http, trusted by the client."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.web.app import create_app, server_ssl_context, start_http
from gateway.web.auth import SESSION_COOKIE

TOKEN = "operator-token-0123456789"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wharf dashboard test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_server_context_refuses_tls_below_1_2(tmp_path: Path) -> None:
    context = server_ssl_context(*self_signed(tmp_path))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # browsers bring no client certificate


def test_https_is_served_and_its_session_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    app = create_app(cast(Any, None), cast(Any, None), cast(Any, None), results_dir=None, token=TOKEN)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def go() -> None:
        runner, address = await start_http(app, "127.0.0.1:0", ssl_context=server_ssl_context(cert, key))
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                async with session.get(f"https://{address}/healthz", ssl=trusting) as response:
                    assert response.status == 200 and await response.json() == {"status": "ok"}
                async with session.post(f"https://{address}/login", data={"token": TOKEN}, ssl=trusting,
                                        allow_redirects=False) as response:
                    assert response.status == 303
                    jar: SimpleCookie = SimpleCookie()
                    jar.load(response.headers["Set-Cookie"])
                    cookie = jar[SESSION_COOKIE]
                    assert cookie["secure"] is True and cookie["httponly"] is True and cookie["samesite"] == "Strict"
                async with session.get(f"https://{address}/api/benchmarks", ssl=trusting) as response:
                    assert response.status == 200
                # Without trust in the certificate there is no connection at all.
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with session.get(f"https://{address}/healthz", ssl=ssl.create_default_context()):
                        pass
                # Nor does the port speak plain HTTP.
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(f"http://{address}/healthz") as response:
                        await response.read()
        finally:
            await runner.cleanup()

    asyncio.run(go())
