"""A CA and the cluster's certificates made without Pulumi (the local run, the cluster smoke run),
from the same requests the program's pulumi-tls resources are made from
(`dpc.cluster.certificate_requests`), for as long as the caller asks.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dpc.cluster import CA_SECRET, CertificateRequest

_USAGES = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "server-and-client": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _pem_certificate(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _sign(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
    *,
    validity: datetime.timedelta,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, hashes.SHA256())


def issue(requests: tuple[CertificateRequest, ...], ca_name: str, validity: datetime.timedelta) -> dict[str, str]:
    """The CA certificate and every requested certificate and key, PEM, keyed by secret name; every
    certificate valid for `validity` from now.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _sign(
        ca_name,
        ca_key.public_key(),
        ca_key,
        None,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        ],
        validity=validity,
    )
    issued = {CA_SECRET: _pem_certificate(ca)}
    for request in requests:
        key = ec.generate_private_key(ec.SECP256R1())
        alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in request.dns_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in request.ip_addresses]
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, True, False, False, False, False, False, False), True),
            (x509.ExtendedKeyUsage(_USAGES[request.usage]), False),
        ]
        if alternative_names:
            extensions.append((x509.SubjectAlternativeName(alternative_names), False))
        certificate = _sign(request.common_name, key.public_key(), ca_key, ca.subject, extensions, validity=validity)
        issued[request.cert_secret] = _pem_certificate(certificate)
        issued[request.key_secret] = _pem_key(key)
    return issued
