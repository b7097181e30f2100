"""`tide gov ...`: proposals and votes of the organisations (ADR 0008), signed by an
admin key and submitted to a node; `--dry-run` shows what a proposal would change."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidechain.cli import EXIT_OK, EXIT_REJECTED
from tidechain.cli.base import (
    Output,
    add,
    admin_client,
    admin_key,
    admin_key_option,
    fields,
    group,
    session,
)
from tidechain.cli.members import certificate_of
from tidechain.client import txbuilder as tb
from tidechain.core.errors import ConfigError
from tidechain.core.hexcodec import parse_hex

if TYPE_CHECKING:
    from tidechain.client.sdk import Client


def register(commands: Any) -> None:
    """Register `tide gov ...` under the top-level command table."""
    gov = group(commands, "gov", "governance: proposals and votes of the organisations")
    p = add(gov, "propose", cmd_gov_propose,
             "propose a consortium decision (gov.propose, signed by an admin key)")
    p.add_argument("action", metavar="ACTION", choices=[
        "add_org", "remove_org", "revoke_cert", "set_param", "activate_contract",
        "add_validator", "remove_validator", "replace_validator_key"],
        help="add_org, remove_org, revoke_cert, set_param, activate_contract, "
             "add_validator, remove_validator, replace_validator_key")
    p.add_argument("--ca-cert", metavar="FILE", help="add_org: the new org's CA (PEM/DER)")
    p.add_argument("--member-cert", action="append", metavar="FILE",
                   help="add_org: an initial member certificate (repeatable)")
    p.add_argument("--org", metavar="ID", help="remove_org, add_validator: the org id")
    p.add_argument("--ca", metavar="FINGERPRINT", help="revoke_cert: the issuing CA")
    p.add_argument("--serial", type=int, metavar="N", help="revoke_cert: the serial")
    p.add_argument("--member", metavar="HEX", help="revoke_cert: the member's key instead")
    p.add_argument("--param", metavar="NAME",
                   help="set_param: gov.threshold, gov.voting_period_ms, "
                        "consensus.max_block_txs or consensus.timeout_{propose,prevote,"
                        "precommit}[_delta]_ms")
    p.add_argument("--value", metavar="VALUE", help="set_param: e.g. 2/3, or 604800000")
    p.add_argument("--contract", metavar="NAME", help="activate_contract: the contract")
    p.add_argument("--version", dest="contract_version", type=int, metavar="N",
                   help="activate_contract: the version every node runs from --height")
    p.add_argument("--height", type=int, default=0, metavar="H",
                   help="activate_contract: the first height it serves (default: the "
                        "block after the decision applies)")
    p.add_argument("--validator", metavar="NAME",
                   help="remove_validator, replace_validator_key: the validator's key name")
    p.add_argument("--name", metavar="NAME", help="add_validator: the new key name")
    p.add_argument("--key", metavar="HEX", help="add_validator, replace_validator_key: "
                   "the Ed25519 consensus public key (64 hex)")
    p.add_argument("--address", metavar="HOST:PORT", help="add_validator: its peer address")
    p.add_argument("--tls-fingerprint", metavar="HEX",
                   help="add_validator: SHA-256 of its TLS certificate")
    p.add_argument("--effective-height", type=int, default=0, metavar="H",
                   help="the height it takes effect at (default: the block after it passes)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what it would change, or why it would be refused; submit nothing")
    admin_key_option(p, "a member organisation")

    p = add(gov, "vote", cmd_gov_vote, "vote on a proposal for the admin key's organisation")
    p.add_argument("id", type=int, metavar="ID", help="the proposal id")
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", dest="approve", action="store_true")
    choice.add_argument("--reject", dest="approve", action="store_false")
    admin_key_option(p, "a member organisation")

    add(gov, "list", cmd_gov_list, "list the proposals with their votes and status")


def _read_cert(path: str) -> bytes:
    """A certificate file, PEM or DER."""
    from tidechain.identity import from_pem

    data = Path(path).read_bytes()
    return from_pem(data) if data.lstrip().startswith(b"-----BEGIN") else data


def _param_value(name: str, text: str) -> Any:
    """gov.threshold as N/D (e.g. 2/3); the other parameters are integers."""
    if name == "gov.threshold":
        num, slash, den = text.partition("/")
        if not slash or not num.isdigit() or not den.isdigit():
            raise ConfigError("gov.threshold is a fraction N/D, for example 2/3")
        return [int(num), int(den)]
    if not text.isdigit():
        raise ConfigError(f"{name} is a non-negative integer")
    return int(text)


def _action_args(args: argparse.Namespace, sdk: Client) -> dict[str, Any]:
    """The proposal's action arguments from the command line."""
    action = args.action
    if action == "add_org":
        if not args.ca_cert or not args.member_cert:
            raise ConfigError("add_org needs --ca-cert FILE and --member-cert FILE "
                              "(repeatable; at least one admin)")
        return {"ca": _read_cert(args.ca_cert),
                "members": [_read_cert(p) for p in args.member_cert]}
    if action == "remove_org":
        if not args.org:
            raise ConfigError("remove_org needs --org ID")
        return {"org": args.org}
    if action == "revoke_cert":
        if args.member:
            ca, serial = certificate_of(sdk, args.member)
            return {"ca": ca, "serial": serial}
        if not args.ca or args.serial is None:
            raise ConfigError("revoke_cert needs --ca FINGERPRINT --serial N, or --member HEX")
        return {"ca": parse_hex(args.ca, 32, "--ca"), "serial": int(args.serial)}
    if action == "set_param":
        if not args.param or args.value is None:
            raise ConfigError("set_param needs --param NAME --value VALUE")
        return {"name": args.param, "value": _param_value(args.param, args.value)}
    if action == "activate_contract":
        if not args.contract or args.contract_version is None:
            raise ConfigError("activate_contract needs --contract NAME --version N "
                              "[--height H]")
        return {"contract": args.contract, "version": args.contract_version,
                "height": args.height}
    return _validator_action_args(args)


def _validator_action_args(args: argparse.Namespace) -> dict[str, Any]:
    """add_validator: --name --key --org [--address] [--tls-fingerprint];
    remove_validator: --validator; replace_validator_key: --validator --key."""
    action = args.action
    if action == "add_validator":
        if not args.name or not args.key or not args.org:
            raise ConfigError("add_validator needs --name NAME --key HEX --org ID "
                              "[--address HOST:PORT] [--tls-fingerprint HEX]")
        tls = (b"" if not args.tls_fingerprint
               else parse_hex(args.tls_fingerprint, 32, "--tls-fingerprint"))
        return {"name": args.name, "key": parse_hex(args.key, 32, "--key"),
                "org": args.org, "address": args.address or "", "tls": tls}
    if not args.validator:
        raise ConfigError(f"{action} needs --validator NAME")
    if action == "replace_validator_key":
        if not args.key:
            raise ConfigError("replace_validator_key needs --validator NAME --key HEX")
        return {"validator": args.validator, "key": parse_hex(args.key, 32, "--key")}
    return {"validator": args.validator}


def cmd_gov_propose(args: argparse.Namespace, out: Output) -> int:
    admin = admin_key(args)
    with admin_client(args, need_trust=not args.dry_run) as sdk:
        proposal = tb.propose_args(args.action, _action_args(args, sdk), args.effective_height)
        signing = session(sdk, admin)
        if args.dry_run:
            answer = sdk.gov_dry_run(signing.build(tb.GOV, "propose", proposal))
            out.result(answer, _dry_run_lines(answer))
            return EXIT_OK if answer["ok"] else EXIT_REJECTED
        outcome = signing.call(tb.GOV, "propose", proposal)
    proposal_id = outcome.log_index
    data = {"id": proposal_id, "action": args.action, "tx_id": outcome.tx_id.hex(),
            "height": outcome.height, "effective_height": args.effective_height}
    when = (f"at height {args.effective_height}" if args.effective_height
            else "in the block after it passes")
    out.result(data, [f"proposal #{proposal_id}: {args.action} (takes effect {when}); "
                      f"vote with: tide gov vote {proposal_id} --approve"])
    return EXIT_OK


def _dry_run_lines(answer: dict[str, Any]) -> list[str]:
    if answer["ok"]:
        return [f"dry run: {answer['action']} would apply now:",
                *fields(answer["effect"])]
    lines = [f"dry run: {answer['action']} would be refused: {answer['error']}: "
             f"{answer['reason']}"]
    if "quorum" in answer:
        lines += fields(answer["quorum"])
    return lines


def cmd_gov_vote(args: argparse.Namespace, out: Output) -> int:
    admin = admin_key(args)
    with admin_client(args, need_trust=True) as sdk:
        outcome = session(sdk, admin).call(tb.GOV, "vote", tb.vote_args(args.id, args.approve))
        proposal = sdk.gov_get(args.id)
    data = {"id": args.id, "approve": args.approve, "status": proposal["status"],
            "tally": proposal["tally"], "apply_height": proposal["apply_height"],
            "tx_id": outcome.tx_id.hex(), "log_index": outcome.log_index}
    tally = proposal["tally"]
    line = (f"voted {'for' if args.approve else 'against'} proposal #{args.id}: "
            f"{proposal['status']} ({tally['approvals']} for, {tally['rejections']} against, "
            f"{tally['orgs']} organisation{'' if tally['orgs'] == 1 else 's'})")
    if proposal["status"] == "passed":
        line += f"; takes effect at height {proposal['apply_height']}"
    out.result(data, [line])
    return EXIT_OK


def cmd_gov_list(args: argparse.Namespace, out: Output) -> int:
    with admin_client(args) as sdk:
        found = sdk.gov_list()
    num, den = found["threshold"]
    count = len(found["orgs"])
    lines = [f"{count} organisation{'' if count == 1 else 's'} ({', '.join(found['orgs'])}); "
             f"a proposal passes with more than {num}/{den} of them; height {found['height']}"]
    for p in found["proposals"]:
        tally = p["tally"]
        where = (f"applies at {p['apply_height']}" if p["status"] == "passed" else
                 f"applied at {p['apply_height']}" if p["status"] == "applied" else
                 p["reason"] if p["status"] == "failed" else "")
        lines.append(f"  #{p['id']:<6} {p['status']:<8} {p['action']:<12} by {p['org']:<10} "
                     f"{tally['approvals']} for, {tally['rejections']} against  {where}".rstrip())
    out.result(found, lines)
    return EXIT_OK
