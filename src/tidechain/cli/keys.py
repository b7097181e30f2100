"""`tide key pem`: a key file in the form other tools read.

Our key files are C2SP signed-note keys (`PRIVATE+KEY+name+...`, client/files.py).
OpenSSL and curl read PKCS#8 PEM instead: a member presenting its certificate over
mutual TLS needs its key in that form, e.g.

    tide key pem NET/admin.key                      # writes NET/admin-key.pem (0600)
    curl --cacert NET/orgs/acme/ca.pem --cert NET/orgs/acme/admin.pem \\
         --key NET/admin-key.pem https://127.0.0.1:8680/v1/status
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, group
from tidechain.client.files import export_key_pem

PEM_SUFFIX = "-key.pem"
"""`admin.key` becomes `admin-key.pem` beside it, unless --out says otherwise."""


def default_pem_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.stem + PEM_SUFFIX)


def cmd_key_pem(args: argparse.Namespace, out: Output) -> int:
    key_file = Path(args.key_file)
    pem = Path(args.out) if args.out else default_pem_path(key_file)
    signer = export_key_pem(key_file, pem)
    public = signer.key.public_key.hex()
    out.result({"key_file": str(key_file), "pem": str(pem), "name": signer.name,
                "public_key": public}, [
        f"wrote {pem}: PKCS#8 PEM private key of {signer.name} (mode 0600)",
        f"  public key  {public}",
        f"  e.g. curl --cert MEMBER.pem --key {pem} https://NODE/v1/status"])
    return EXIT_OK


def register(commands: Any) -> None:
    """`tide key pem` into the top-level table."""
    key = group(commands, "key", "key files")
    p = add(key, "pem", cmd_key_pem,
            "write a key file's private key as unencrypted PKCS#8 PEM (mode 0600), for "
            "OpenSSL and curl: `curl --cert MEMBER.pem --key KEY.pem` (mutual TLS)")
    p.add_argument("key_file", metavar="KEYFILE", help="a tide key file, e.g. NET/admin.key")
    p.add_argument("--out", metavar="FILE",
                   help=f"the PEM file to create (default: KEYFILE's name with "
                        f"{PEM_SUFFIX!r} instead of '.key'; refused if it exists)")
