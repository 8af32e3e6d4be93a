"""Renderers of the database stack's configuration files, each a pure function of a `ClusterLayout`.

Each module renders the files of one program. A program's main file is a plain Docker config; the
parts that carry secret values are rendered separately, from the secret values passed in, and are
delivered as Docker secrets.

Only what several renderers share lives here: where a service finds its TLS files, and how a YAML
file is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from dpc.cluster import CA_SECRET, ClusterLayout, certificate_secret, key_secret


@dataclass(frozen=True)
class TlsFiles:
    """The files a TLS endpoint reads: its certificate and key, and the cluster CA it trusts."""

    cert: str
    key: str
    ca: str


def tls_files(layout: ClusterLayout, certificate: str) -> TlsFiles:
    """The secret files of the certificate named `certificate` (a `CertificateRequest.name`).

    Every service trusts the cluster CA alone, so peers and clients are verified against it.
    """
    return TlsFiles(
        cert=layout.paths.secret(certificate_secret(certificate)),
        key=layout.paths.secret(key_secret(certificate)),
        ca=layout.paths.secret(CA_SECRET),
    )


def dump_yaml(data: object) -> str:
    """A YAML file as every renderer writes it: keys sorted, block style, long lines left whole.

    Through libyaml's emitter: the same text as PyYAML's pure-Python one (golden-tested), which
    walked every character of the Patroni and alert-rule files in Python, 0.1 s of each offline plan.
    """
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False, width=1000)
