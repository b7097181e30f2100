"""`tide member ...` and `tide org ...`: organisation CAs kept on this machine
(client/files.py), member certificates issued from them, and the membership calls an
admin signs (contracts/members.py: enrol, revoke, add_ca, remove_ca)."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import (
    Output,
    add,
    admin_client,
    admin_key,
    admin_key_option,
    group,
    key_file,
    network_dir,
    now_ms,
    org_options,
    session,
)
from tidechain.client import txbuilder as tb
from tidechain.client.files import (
    SEED_BYTES,
    OrgDir,
    init_org,
    issue_member,
    load_genesis,
    org_dirs,
    read_key,
    write_key,
)
from tidechain.core.errors import ConfigError
from tidechain.core.hexcodec import parse_hex
from tidechain.core.timefmt import iso_utc

if TYPE_CHECKING:
    from tidechain.client.sdk import Client


def certificate_of(sdk: Client, member: str) -> tuple[bytes, int]:
    """(CA fingerprint, serial) of the certificate of the member with key `member` (hex)."""
    record = sdk.member(member)
    return bytes.fromhex(record["ca"]), int(record["serial"])


def _org_dir(args: argparse.Namespace) -> OrgDir:
    """--org-dir DIR, else the only organisation under NET/orgs/."""
    if args.org_dir:
        return OrgDir(Path(args.org_dir))
    found = org_dirs(network_dir(args))
    if len(found) != 1:
        raise ConfigError(f"{len(found)} organisations under {network_dir(args)}/orgs: "
                          "pass --org-dir DIR")
    return found[0]


def _member_key(args: argparse.Namespace) -> tuple[bytes, Path]:
    """The public key to enrol and the file holding its private key."""
    if args.new_key:
        path = Path(args.new_key)
        if path.exists():
            raise ConfigError(f"{path} exists; refusing to overwrite a key")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", args.name).strip("-") or "member"
        signer = write_key(path, f"{load_genesis(network_dir(args)).name}/{slug}",
                           os.urandom(SEED_BYTES))
        return signer.key.public_key, path
    if args.key:
        return read_key(Path(args.key)).key.public_key, Path(args.key)
    raise ConfigError("give the member's key: --key FILE (existing) or --new-key FILE")


@dataclass(frozen=True)
class _Issued:
    cert: bytes
    member: Any  # identity.Member (imported lazily: cryptography.x509 is slow to load)
    roles: tuple[Any, ...]
    public_key: bytes
    key_path: Path
    cert_path: Path


def _issue_certificate(org: OrgDir, args: argparse.Namespace, at_ms: int) -> _Issued:
    """Issue --name/--role's certificate for the member key with the org's CA, check it
    as the chain will, and write it next to the key as KEY.pem."""
    from tidechain.identity import parse_roles, to_pem, verify_member_cert

    roles = tuple(sorted(parse_roles(args.role)))
    public_key, key_path = _member_key(args)
    cert = issue_member(org, args.name, public_key, roles, at_ms)
    member = verify_member_cert(cert, org.cert(), at_ms)
    cert_path = key_path.with_name(key_path.name + ".pem")
    cert_path.write_bytes(to_pem(cert))
    return _Issued(cert, member, roles, public_key, key_path, cert_path)


# --- organisations ---------------------------------------------------------------------------


def cmd_org_init(args: argparse.Namespace, out: Output) -> int:
    from tidechain.identity import parse_org_ca

    directory = Path(args.dir)
    org = init_org(directory, args.org, args.legal_name, args.uscc, now_ms())
    ca = parse_org_ca(org.cert(), now_ms())
    data = {"org": ca.org_id, "legal_name": ca.legal_name, "uscc": ca.uscc,
            "fingerprint": ca.fingerprint.hex(), "cert": str(org.cert_path),
            "key": str(org.key_path), "not_after_ms": ca.not_after_ms}
    out.result(data, [
        f"created the CA of organisation {ca.org_id} in {directory}",
        f"  legal name   {ca.legal_name}",
        f"  USCC         {ca.uscc}",
        f"  fingerprint  {ca.fingerprint.hex()}",
        f"  certificate  {org.cert_path}",
        f"  key          {org.key_path}  (mode 0600: keep it offline)",
        "issue its first admin's certificate with `tide org issue`, then an organisation",
        "on chain proposes it: `tide gov propose add_org --ca-cert ... --member-cert ...`;",
        "an organisation already on chain registers this CA with `tide org add-ca DIR`",
    ])
    return EXIT_OK


def cmd_org_issue(args: argparse.Namespace, out: Output) -> int:
    """A member certificate from an organisation's CA, written next to the key as
    KEY.pem, without enrolling it (for an organisation that governance will add)."""
    issued = _issue_certificate(OrgDir(Path(args.dir)), args, now_ms())
    member, roles, public_key = issued.member, issued.roles, issued.public_key
    data = {"org": member.org_id, "name": member.name, "key": public_key.hex(),
            "roles": [r.value for r in roles], "serial": member.serial,
            "cert": str(issued.cert_path), "key_file": str(issued.key_path)}
    out.result(data, [f"issued a certificate for {member.name} of {member.org_id} "
                      f"({', '.join(r.value for r in roles)}): {issued.cert_path}"])
    return EXIT_OK


def cmd_org_add_ca(args: argparse.Namespace, out: Output) -> int:
    """Register the CA in DIR (made with `tide org init` with the same org id and USCC)
    as another CA of an organisation already on chain: members.add_ca."""
    from tidechain.identity import parse_org_ca

    ca_der = OrgDir(Path(args.dir)).cert()
    ca = parse_org_ca(ca_der, now_ms())
    admin = admin_key(args)
    with admin_client(args, need_trust=True) as sdk:
        outcome = session(sdk, admin).call(tb.MEMBERS, "add_ca", tb.add_ca_args(ca_der))
    data = {"org": ca.org_id, "fingerprint": ca.fingerprint.hex(),
            "not_after_ms": ca.not_after_ms, "tx_id": outcome.tx_id.hex(),
            "log_index": outcome.log_index}
    out.result(data, [
        f"added CA {ca.fingerprint.hex()} to organisation {ca.org_id} "
        f"(log index {outcome.log_index})",
        f"  valid until  {iso_utc(ca.not_after_ms)}",
        f"next: enrol members under it (tide member enrol --org-dir {args.dir} ...), "
        "the admin first, then retire the old CA with `tide org remove-ca`",
    ])
    return EXIT_OK


def cmd_org_remove_ca(args: argparse.Namespace, out: Output) -> int:
    """Retire one of the organisation's CAs: members.remove_ca. Its members stop
    counting at once; the chain refuses to remove the last CA or the admin's own."""
    from tidechain.contracts.members import parse_fingerprint

    if (args.fingerprint is None) == (args.dir is None):
        raise ConfigError("say which CA: --fingerprint HEX or --dir DIR (its ca.pem)")
    fingerprint = (parse_hex(args.fingerprint, 32, "--fingerprint") if args.fingerprint
                   else parse_fingerprint(OrgDir(Path(args.dir)).cert()))
    admin = admin_key(args)
    with admin_client(args, need_trust=True) as sdk:
        outcome = session(sdk, admin).call(tb.MEMBERS, "remove_ca",
                                           tb.remove_ca_args(fingerprint))
    data = {"fingerprint": fingerprint.hex(), "tx_id": outcome.tx_id.hex(),
            "log_index": outcome.log_index}
    out.result(data, [f"removed CA {fingerprint.hex()} (log index {outcome.log_index}); "
                      "the members it certified no longer count"])
    return EXIT_OK


# --- members -----------------------------------------------------------------------------------


def cmd_member_enrol(args: argparse.Namespace, out: Output) -> int:
    org = _org_dir(args)
    admin = admin_key(args)
    issued = _issue_certificate(org, args, now_ms())
    member, roles = issued.member, issued.roles
    with admin_client(args, need_trust=True) as sdk:
        outcome = session(sdk, admin).call(tb.MEMBERS, "enrol", tb.enrol_args(issued.cert))
    data = {"org": member.org_id, "name": member.name, "key": issued.public_key.hex(),
            "roles": [r.value for r in roles], "serial": member.serial,
            "ca": member.ca_fingerprint.hex(), "not_after_ms": member.not_after_ms,
            "key_file": str(issued.key_path), "cert": str(issued.cert_path),
            "tx_id": outcome.tx_id.hex(), "log_index": outcome.log_index}
    out.result(data, [
        f"enrolled {member.name} in {member.org_id} (log index {outcome.log_index})",
        f"  key          {issued.public_key.hex()}  ({issued.key_path})",
        f"  roles        {', '.join(r.value for r in roles)}",
        f"  serial       {member.serial}",
        f"  certificate  {issued.cert_path}  (valid until {iso_utc(member.not_after_ms)})",
    ])
    return EXIT_OK


def cmd_member_list(args: argparse.Namespace, out: Output) -> int:
    org_id = args.org
    if not org_id:
        genesis = load_genesis(network_dir(args))
        if not genesis.orgs:
            raise ConfigError("the genesis has no organisation: pass --org ID")
        from tidechain.identity import parse_org_ca

        org_id = parse_org_ca(genesis.orgs[0].ca, genesis.time_ms).org_id
    with admin_client(args) as sdk:
        found = sdk.members(org_id)
    lines = [f"organisation {found['org']}: {found['legal_name']} (USCC {found['uscc']})",
             *(f"  CA {fp}" for fp in found["cas"])]
    for m in found["members"]:
        lines.append(f"  {m['key']}  {m['status']:<10} {','.join(m['roles']):<20} "
                     f"serial {m['serial']}  {m['name']}")
    if found.get("truncated"):
        lines.append("  (list truncated)")
    out.result(found, lines)
    return EXIT_OK


def cmd_member_revoke(args: argparse.Namespace, out: Output) -> int:
    from tidechain.identity import parse_org_ca

    admin = admin_key(args)
    with admin_client(args, need_trust=True) as sdk:
        if args.serial is not None:
            ca = (parse_hex(args.ca, 32, "--ca") if args.ca
                  else parse_org_ca(_org_dir(args).cert(), now_ms()).fingerprint)
            serial = int(args.serial)
        else:
            if args.key:
                target = key_file(args.key).public_key.hex()
            elif args.member:
                target = args.member
            else:
                raise ConfigError("say which certificate: --member HEX, --key FILE, "
                                  "or --serial N [--ca FINGERPRINT]")
            ca, serial = certificate_of(sdk, target)
        outcome = session(sdk, admin).call(tb.MEMBERS, "revoke", tb.revoke_args(ca, serial))
    data = {"ca": ca.hex(), "serial": serial, "tx_id": outcome.tx_id.hex(),
            "log_index": outcome.log_index}
    out.result(data, [f"revoked certificate serial {serial} of CA {ca.hex()} "
                      f"(log index {outcome.log_index})"])
    return EXIT_OK


# --- the parser ------------------------------------------------------------------------------


def _org_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org-dir", metavar="DIR",
                        help="the organisation's CA directory (default: the only one "
                             "under NET/orgs/)")
    admin_key_option(parser)


def register(commands: Any) -> None:
    member = group(commands, "member", "members of an organisation")
    p = add(member, "enrol", cmd_member_enrol,
            "issue a member certificate with the org's CA and enrol it on chain "
            "(members.enrol, signed by an admin key)")
    p.add_argument("--role", action="append", required=True, metavar="ROLE",
                   help="a role (repeatable): admin, depositor, invoice_issuer, "
                        "tax_authority, enterprise, funder, carrier, regulator")
    p.add_argument("--name", required=True, help="the member's name (certificate CN)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", metavar="FILE", help="enrol this existing key file")
    keys.add_argument("--new-key", metavar="FILE", help="create a new key in FILE and enrol it")
    _org_dir_options(p)

    p = add(member, "list", cmd_member_list, "list an organisation's members")
    p.add_argument("--org", metavar="ID", help="org id (default: the genesis's first)")

    p = add(member, "revoke", cmd_member_revoke,
            "revoke a member certificate (members.revoke, signed by an admin key)")
    p.add_argument("--member", metavar="HEX", help="the member's public key")
    p.add_argument("--key", metavar="FILE", help="the member's key file")
    p.add_argument("--serial", type=int, metavar="N", help="the certificate's serial")
    p.add_argument("--ca", metavar="FINGERPRINT",
                   help="with --serial: the issuing CA (default: the org dir's CA)")
    _org_dir_options(p)

    org = group(commands, "org", "organisations")
    p = add(org, "init", cmd_org_init,
            "create an organisation CA (key + certificate) in DIR: for an organisation "
            "joining later (tide gov propose add_org), or a new CA of one already on "
            "chain (tide org add-ca)")
    p.add_argument("dir", metavar="DIR")
    org_options(p, required=True)

    p = add(org, "issue", cmd_org_issue,
            "issue a member certificate from the CA in DIR without enrolling it (for "
            "an organisation that `tide gov propose add_org` will register)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--role", action="append", required=True, metavar="ROLE",
                   help="a role (repeatable)")
    p.add_argument("--name", required=True, help="the member's name (certificate CN)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", metavar="FILE", help="certify this existing key file")
    keys.add_argument("--new-key", metavar="FILE", help="create a new key in FILE")

    p = add(org, "add-ca", cmd_org_add_ca,
            "register the CA in DIR as another CA of the admin's organisation "
            "(members.add_ca: a CA rotation's first step)")
    p.add_argument("dir", metavar="DIR", help="a CA directory made by `tide org init` "
                   "with the organisation's own org id and USCC")
    admin_key_option(p)

    p = add(org, "remove-ca", cmd_org_remove_ca,
            "retire one of the admin's organisation's CAs (members.remove_ca); its "
            "members stop counting")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--fingerprint", metavar="HEX", help="the CA's SHA-256 fingerprint")
    which.add_argument("--dir", metavar="DIR", help="the CA directory (its ca.pem)")
    admin_key_option(p)
