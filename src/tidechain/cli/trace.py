"""`tide trace ID` and `tide epcis ...`: traceability (docs/traceability.md).

* `tide trace ID` an item's, case's or lot's whole history (EPC URN or GS1 Digital
  Link), upstream and downstream, with anomalies and recalls; `--receipts DIR` fetches
  and verifies each readable event's receipt offline and writes it there;
* `tide epcis recall ID` what a recall of ID affects;
* `tide epcis capture FILE` captures an EPCISDocument (JSON-LD or XML) through the
  node's EPCIS binding (the node's capturer signs), or with `--sign` signed here with
  your own member key;
* `tide epcis events [NAME=VALUE ...]` runs an EPCIS query (the binding's parameters).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, client, group, key_file, session, trust_option
from tidechain.client.sdk import write_atomically
from tidechain.core.errors import ConfigError, Rejected

MAX_SHOWN_IDENTIFIERS = 12
"""Identifiers listed under one event in the text timeline; the rest are counted."""


def cmd_trace(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client import trace as sdk_trace

    with client(args, need_trust=bool(args.receipts)) as sdk:
        found = sdk_trace.trace(sdk, args.id)
        written: list[str] = []
        if args.receipts:
            assert sdk.trust is not None
            folder = Path(args.receipts)
            folder.mkdir(parents=True, exist_ok=True)
            for event in found["events"]:
                if event.get("hidden"):
                    continue
                receipt = sdk.receipt(int(event["ref"]))
                proven = sdk_trace.verify_event_receipt(receipt, sdk.trust,
                                                        expected_hash=event["hash"])
                path = folder / f"event-{proven.index}.tlog-proof"
                write_atomically(path, receipt)
                written.append(str(path))
    found["receipts"] = written
    out.result(found, trace_lines(found) + (
        [f"{len(written)} receipt(s) verified offline and written to {args.receipts}"]
        if args.receipts else []))
    return EXIT_OK


def trace_lines(found: dict[str, Any]) -> list[str]:
    """The trace as a readable timeline (from the API's JSON)."""
    recalls = {c["ref"] for c in found["recalls"]}
    anomalous = {ref for a in found["anomalies"] for ref in a["refs"]}
    lines = [f"trace of {found['start']}: {len(found['events'])} event(s), organisations: "
             f"{', '.join(found['organisations']) or '-'}"]
    if found["truncated"]:
        lines.append(f"TRUNCATED at {' and '.join(found['truncated'])}: incomplete")
    for event in found["events"]:
        if event.get("hidden"):
            lines.append(f"{event.get('event_time', '?')}  {event['org']:<14} "
                         f"{event.get('type', '')}  #{event['ref']}  [not yours to read]")
            continue
        marks = [m for m, on in (("DECLARATION", event["declaration"]),
                                 ("DECLARED", event["declared"]),
                                 ("RECALL", event["ref"] in recalls),
                                 ("ANOMALY", event["ref"] in anomalous)) if on]
        words = [event["type"], event.get("action") or "", event.get("biz_step") or "",
                 event.get("disposition") or ""]
        lines.append(f"{event['event_time']}  {event['org']:<14} "
                     f"{' '.join(w for w in words if w)}  #{event['ref']}"
                     + (f"  [{' '.join(marks)}]" if marks else ""))
        named = event["identifiers"]
        lines.extend(f"    {n['role']:<12} {n['id']}" for n in named[:MAX_SHOWN_IDENTIFIERS])
        if len(named) > MAX_SHOWN_IDENTIFIERS:
            lines.append(f"    ... and {len(named) - MAX_SHOWN_IDENTIFIERS} more")
    lines.append("identifiers:")
    for traced in found["identifiers"]:
        recalled = ("" if traced["recalled_by"] is None
                    else f"  RECALLED by #{traced['recalled_by']}")
        lines.append(f"  {traced['relation']:<13} {traced['id']}{recalled}")
    for anomaly in found["anomalies"]:
        lines.append(f"anomaly {anomaly['kind']}: {anomaly['message']}")
    for declaration in found["declarations"]:
        why = ("not yours to read" if declaration.get("hidden")
               else declaration.get("reason") or "no reason given")
        lines.append(f"error declaration #{declaration['ref']} of "
                     f"{', '.join('#' + str(r) for r in declaration['declared_refs']) or '-'}"
                     f" ({why})")
    return lines


def cmd_recall(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client import trace as sdk_trace

    with client(args) as sdk:
        affected = sdk_trace.recall(sdk, args.id)
    out.result({"recalled": args.id, "affected": affected},
               [f"a recall of {args.id} affects {len(affected)} identifier(s):",
                *(f"  {a}" for a in affected)])
    return EXIT_OK


def cmd_capture(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client import trace as sdk_trace

    path = Path(args.file)
    try:
        document = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with client(args) as sdk:
        if args.sign:
            if not args.key:
                raise ConfigError("--sign needs --key KEYFILE: the member key that signs")
            outcomes = sdk_trace.capture_signed(session(sdk, key_file(args.key)), document)
            failed = [o for o in outcomes if o.get("status") != "committed" or not o.get("ok")]
            out.result({"events": outcomes}, [
                f"{len(outcomes) - len(failed)} of {len(outcomes)} event(s) of {path} "
                "recorded, signed by your key",
                *(f"  event at log index {o.get('log_index')}: "
                  f"{o.get('error') or 'recorded'}" for o in outcomes)])
            if failed:
                raise Rejected(f"{len(failed)} event(s) refused", code="capture_failed")
            return EXIT_OK
        job = sdk_trace.capture(sdk, document, behaviour=args.behaviour)
        if not args.no_wait:
            job = sdk_trace.wait_job(sdk, job["captureID"])
    lines = [f"capture job {job['captureID']}: "
             + ("running" if job["running"] else "done" if job["success"] else "FAILED")]
    lines += [f"  event {e['position']}: log index {e['logIndex']}  {e['eventHash']}"
              + (f"  error: {e['error']}" if e.get("error") else "") for e in job["events"]]
    lines += [f"  error: {e.get('reason')}" for e in job["errors"]]
    out.result(job, lines)
    if not job["running"] and not job["success"]:
        raise Rejected("the capture job reported errors", code="capture_failed")
    return EXIT_OK


def cmd_events(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client import trace as sdk_trace

    params: dict[str, str] = {}
    for item in args.params:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise ConfigError(f"query parameters are NAME=VALUE, not {item!r}")
        params[name] = value
    with client(args) as sdk:
        found = list(sdk_trace.events(sdk, params))
    out.result({"events": found}, [
        f"{len(found)} event(s)",
        *(f"  {e.get('eventTime')}  {e.get('type')}  {e.get('bizStep', '')}  "
          f"{e.get('eventID', '')}" for e in found)])
    return EXIT_OK


def register(commands: Any) -> None:
    p = add(commands, "trace", cmd_trace, "the whole history of an item, case or lot "
            "(traceability, docs/traceability.md)")
    p.add_argument("id", metavar="ID", help="an EPC URN or a GS1 Digital Link URI")
    p.add_argument("--receipts", metavar="DIR", help="fetch, verify offline and write "
                   "every readable event's receipt to DIR")
    trust_option(p)
    epcis = group(commands, "epcis", "the GS1 EPCIS 2.0 repository: capture, query, "
                  "recalls (docs/traceability.md)")
    p = add(epcis, "recall", cmd_recall, "what a recall of ID affects")
    p.add_argument("id", metavar="ID")
    p = add(epcis, "capture", cmd_capture, "capture an EPCISDocument (JSON-LD or XML)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--behaviour", choices=("rollback", "proceed"), default="rollback",
                   help="GS1-Capture-Error-Behaviour (default rollback: all or nothing "
                        "before anything is submitted)")
    p.add_argument("--no-wait", action="store_true", help="return the job as accepted")
    p.add_argument("--sign", action="store_true", help="sign each event here with --key "
                   "instead of the node's capturer")
    p.add_argument("--key", metavar="KEYFILE", help="your member key (with --sign)")
    p = add(epcis, "events", cmd_events, "run an EPCIS query: NAME=VALUE parameters of "
            "the REST binding (eventType, MATCH_epc, EQ_bizStep, GE_eventTime, ...)")
    p.add_argument("params", nargs="*", metavar="NAME=VALUE")
