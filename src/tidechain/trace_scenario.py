"""The traceability demo's story as EPCIS 2.0 documents (docs/traceability.md).

A farm harvests a lot of apples and ships it to a processor under a purchase order;
the processor turns it into six retail packs and a lot of juice concentrate, packs
the packs into two cases, and hands them to a cold-chain carrier, which loads them on
a pallet, reports the temperature on the way (XML, with sensor data) and unloads at
the retailer. The retailer receives the cases, unpacks one and sells a pack. Then the
farm recalls its lot: every pack and case made from it shows as recalled, and the pack
in the shopper's hands is traced back to the farm.

Pure data: `scenario(start_ms)` gives each step's capturing party and its document,
for the demo (`trace_demo.py`) and for the test that replays it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from tidechain.core.timefmt import iso_utc

CONTEXT: Final = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                  {"demo": "https://tidechain.example/epcis/"}]
FARM_PREFIX, PROCESSOR_PREFIX, CARRIER_PREFIX, RETAILER_PREFIX = (
    "4012345", "0614141", "0653500", "0712345")
FARM_LOT: Final = f"urn:epc:class:lgtin:{FARM_PREFIX}.012345.HARVEST-1217"
JUICE_LOT: Final = f"urn:epc:class:lgtin:{PROCESSOR_PREFIX}.207346.JC-2026-12"
PACKS: Final = tuple(f"urn:epc:id:sgtin:{PROCESSOR_PREFIX}.107346.{1001 + i}"
                     for i in range(6))
CASES: Final = (f"urn:epc:id:sscc:{PROCESSOR_PREFIX}.1000000011",
                f"urn:epc:id:sscc:{PROCESSOR_PREFIX}.1000000028")
PALLET: Final = f"urn:epc:id:sscc:{CARRIER_PREFIX}.2000000017"
SOLD_PACK: Final = PACKS[0]
PURCHASE_ORDER: Final = f"urn:epcglobal:cbv:bt:{PROCESSOR_PREFIX}000009:PO-881"
DESPATCH_ADVICE: Final = f"urn:epcglobal:cbv:bt:{PROCESSOR_PREFIX}000009:DESADV-4410"


def _party(prefix: str) -> str:
    return f"urn:epc:id:pgln:{prefix}.00000"


def _site(prefix: str, site: str) -> str:
    return f"urn:epc:id:sgln:{prefix}.{site}.0"


@dataclass(frozen=True)
class Step:
    actor: str
    """`farm`, `processor`, `carrier` or `retailer`."""
    title: str
    media: str
    document: bytes


def _document(events: list[dict[str, Any]], created: str) -> bytes:
    return json.dumps({"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": created, "epcisBody": {"eventList": events}},
                      indent=1).encode()


def _event(kind: str, at_ms: int, action: str | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "eventTime": iso_utc(at_ms),
                             "eventTimeZoneOffset": "+08:00"}
    if action is not None:
        event["action"] = action
    event.update(fields)
    return event


THERMOMETER: Final = f"urn:epc:id:giai:{CARRIER_PREFIX}.T-77"


def _sensor_xml(at_ms: int, created: str) -> bytes:
    """The carrier's temperature report on the road, as its XML capture client sends;
    under the despatch advice, so the retailer, a party to it, reads it."""
    readings = "".join(
        f'<sensorReport type="gs1:MT-Temperature" value="{t}" uom="CEL" '
        f'time="{iso_utc(at_ms + i * 600_000)}"/>' for i, t in enumerate((3.5, 4.1, 3.8)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"
    xmlns:gs1="https://gs1.org/voc/" schemaVersion="2.0" creationDate="{created}">
  <EPCISBody>
    <EventList>
      <ObjectEvent>
        <eventTime>{iso_utc(at_ms)}</eventTime>
        <eventTimeZoneOffset>+08:00</eventTimeZoneOffset>
        <epcList><epc>{PALLET}</epc></epcList>
        <action>OBSERVE</action>
        <bizStep>urn:epcglobal:cbv:bizstep:transporting</bizStep>
        <disposition>urn:epcglobal:cbv:disp:in_transit</disposition>
        <readPoint><id>{_site(CARRIER_PREFIX, "00042")}</id></readPoint>
        <bizTransactionList>
          <bizTransaction type="urn:epcglobal:cbv:btt:desadv">{DESPATCH_ADVICE}</bizTransaction>
        </bizTransactionList>
        <sensorElementList>
          <sensorElement>
            <sensorMetadata time="{iso_utc(at_ms)}" deviceID="{THERMOMETER}"/>
            {readings}
          </sensorElement>
        </sensorElementList>
      </ObjectEvent>
    </EventList>
  </EPCISBody>
</epcis:EPCISDocument>
""".encode()


def scenario(start_ms: int) -> list[Step]:
    """The story's documents, events an hour apart from `start_ms` (a block time, so
    that event times are in the past of the chain that records them)."""
    hour = 3_600_000
    t = [start_ms + i * hour for i in range(12)]
    created = iso_utc(start_ms)
    farm_site, processor_site = _site(FARM_PREFIX, "00001"), _site(PROCESSOR_PREFIX, "00777")
    retail_site = _site(RETAILER_PREFIX, "00300")
    lot_quantity = [{"epcClass": FARM_LOT, "quantity": 2000, "uom": "KGM"}]
    po = [{"type": "po", "bizTransaction": PURCHASE_ORDER}]
    desadv = [{"type": "desadv", "bizTransaction": DESPATCH_ADVICE}]
    return [
        Step("farm", "harvest: the farm commissions its lot", "json", _document([
            _event("ObjectEvent", t[0], "ADD", epcList=[], quantityList=lot_quantity,
                   bizStep="commissioning", disposition="active",
                   readPoint={"id": farm_site}, bizLocation={"id": farm_site},
                   ilmd={"demo:orchard": "Block 7, Yantai"})], created)),
        Step("farm", "the farm ships the lot to the processor (purchase order PO-881)",
             "json", _document([
                 _event("ObjectEvent", t[1], "OBSERVE", epcList=[], quantityList=lot_quantity,
                        bizStep="shipping", disposition="in_transit",
                        readPoint={"id": farm_site}, bizTransactionList=po,
                        sourceList=[{"type": "owning_party", "source": _party(FARM_PREFIX)}],
                        destinationList=[{"type": "owning_party",
                                          "destination": _party(PROCESSOR_PREFIX)}])],
                 created)),
        Step("processor", "the processor receives the lot", "json", _document([
            _event("ObjectEvent", t[2], "OBSERVE", epcList=[], quantityList=lot_quantity,
                   bizStep="receiving", disposition="in_progress",
                   readPoint={"id": processor_site}, bizLocation={"id": processor_site},
                   bizTransactionList=po)], created)),
        Step("processor", "the processor makes six retail packs and a lot of concentrate",
             "json", _document([
                 _event("TransformationEvent", t[3], None,
                        inputQuantityList=lot_quantity, outputEPCList=list(PACKS),
                        outputQuantityList=[{"epcClass": JUICE_LOT, "quantity": 300,
                                             "uom": "LTR"}],
                        bizStep="commissioning", disposition="active",
                        readPoint={"id": processor_site})], created)),
        Step("processor", "the processor packs three packs into each case", "json",
             _document([
                 _event("AggregationEvent", t[4], "ADD", parentID=CASES[0],
                        childEPCs=list(PACKS[:3]), bizStep="packing",
                        disposition="in_progress", readPoint={"id": processor_site}),
                 _event("AggregationEvent", t[4] + 60_000, "ADD", parentID=CASES[1],
                        childEPCs=list(PACKS[3:]), bizStep="packing",
                        disposition="in_progress", readPoint={"id": processor_site})],
                 created)),
        Step("carrier", "the cold-chain carrier loads both cases on a pallet "
             "(despatch advice DESADV-4410)", "json", _document([
                 _event("AggregationEvent", t[5], "ADD", parentID=PALLET,
                        childEPCs=list(CASES), bizStep="loading", disposition="in_transit",
                        readPoint={"id": processor_site}, bizTransactionList=desadv,
                        sourceList=[{"type": "owning_party",
                                     "source": _party(PROCESSOR_PREFIX)}],
                        destinationList=[{"type": "owning_party",
                                          "destination": _party(RETAILER_PREFIX)}])],
                 created)),
        Step("carrier", "on the road: the pallet's temperature (XML, sensor data)", "xml",
             _sensor_xml(t[6], created)),
        Step("carrier", "the carrier unloads at the retailer", "json", _document([
            _event("AggregationEvent", t[7], "DELETE", parentID=PALLET,
                   childEPCs=list(CASES), bizStep="unloading", disposition="in_progress",
                   readPoint={"id": retail_site}, bizTransactionList=desadv)], created)),
        Step("retailer", "the retailer receives the cases", "json", _document([
            _event("ObjectEvent", t[8], "OBSERVE", epcList=list(CASES), bizStep="receiving",
                   disposition="in_progress", readPoint={"id": retail_site},
                   bizLocation={"id": retail_site}, bizTransactionList=desadv)], created)),
        Step("retailer", "the retailer unpacks the first case", "json", _document([
            _event("AggregationEvent", t[9], "DELETE", parentID=CASES[0],
                   childEPCs=list(PACKS[:3]), bizStep="unpacking",
                   disposition="sellable_accessible", readPoint={"id": retail_site})],
            created)),
        Step("retailer", "a shopper buys a pack", "json", _document([
            _event("ObjectEvent", t[10], "OBSERVE", epcList=[SOLD_PACK],
                   bizStep="retail_selling", disposition="retail_sold",
                   readPoint={"id": retail_site})], created)),
        Step("farm", "the farm recalls its lot (the market regulator's order)", "json",
             _document([
                 _event("ObjectEvent", t[11], "OBSERVE", epcList=[],
                        quantityList=lot_quantity, bizStep="holding",
                        disposition="recalled", readPoint={"id": farm_site})], created)),
    ]


EXPECTED_TRACE_ORGS: Final = ("carrier", "farm", "processor", "retailer")
"""Whose events a trace from the sold pack reaches: every party of the story."""
