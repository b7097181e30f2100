"""The CBV 2.0 event hash ID of one EPCIS 2.0 event: `ni:///sha-256;<hex>?ver=CBV2.0`.

GS1's Core Business Vocabulary 2.0 defines a syntax-independent fingerprint of an
EPCIS event: the event's fields are written, normalised, into one *pre-hash string*
in a fixed order, and the string's SHA-256 is embedded in an RFC 6920 `ni` URI. The
same event gives the same hash whether it was written in JSON-LD or XML, in any
element order, time zone or number precision; any change to a hashed field changes it.

The rules, as the reference implementation (epcis-event-hash-generator 1.9.3) and its
known answers apply them (docs/traceability.md lists them with the known divergences):

* Fields in the canonical order: `eventType`, `eventTime`, `eventTimeZoneOffset`,
  `certificationInfo`, `parentID`, the EPC and quantity lists, `action`,
  `transformationID`, `bizStep`, `disposition`, `persistentDisposition`,
  `readPoint`, `bizLocation`, `sensorElementList`; then, sorted as strings,
  `bizTransactionList`, `destinationList`, `ilmd`, `sourceList`, the standard fields
  the order does not name (a sensor report's `bizRules`, under its path) and the user
  extensions. `eventID`, `recordTime`, `errorDeclaration` and `rdfs:comment`
  annotations are not hashed.
* `key=value` pairs and list names (`epcList`, `sensorReport`...) concatenated with no
  separator; the items of every list sorted as strings; a `type` before its
  `bizTransaction`, `source` or `destination`.
* Values trimmed; time stamps in UTC with exactly three fractional digits (the third
  rounded half up); numbers read as IEEE 754 doubles and written without trailing
  zeros (integral values as integers); CBV bare words and `urn:epcglobal:cbv:` URNs as
  `https://ref.gs1.org/cbv/...` URIs; compact IRIs expanded; EPC URNs and GS1 Digital
  Link URIs as constrained canonical Digital Links on `https://id.gs1.org`.
* Extension keys as `{namespace}localName`; nested extensions recursively, each level
  sorted.

Pure: no I/O and no clock. Floats appear only transiently, to reproduce the
reference's reading of numbers; CPython converts them with correctly rounded,
platform-independent routines, so every node writes the same string.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from tidechain.core.errors import Rejected, TooLarge

__all__ = [
    "CBV_VERSION",
    "EVENT_TYPES",
    "MAX_DEPTH",
    "MAX_EVENT_NODES",
    "MAX_LIST_ITEMS",
    "MAX_PRE_HASH_CHARS",
    "MAX_VALUE_CHARS",
    "BadEvent",
    "Context",
    "EventTooLarge",
    "canonical_digital_link",
    "canonical_number",
    "canonical_time",
    "document_events",
    "epc_to_digital_link",
    "event_hash",
    "pre_hash_string",
]

CBV_VERSION: Final = "CBV2.0"
"""The version of the algorithm, as the `ver` query of the `ni` URI names it."""

EVENT_TYPES: Final = frozenset({"ObjectEvent", "AggregationEvent", "TransactionEvent",
                                "TransformationEvent", "AssociationEvent"})

# --- limits ------------------------------------------------------------------------------
MAX_EVENT_NODES: Final = 100_000
"""Values, objects and lists in one event, extensions included. A shipment's
ObjectEvent listing 20,000 EPCs stays well under it; the bound caps the sorting and
string building one hostile event can cause."""

MAX_LIST_ITEMS: Final = 20_000
"""Items in one list (an EPC list, a quantity list, an extension array). EPCIS sets no
bound; a large shipment lists thousands of EPCs."""

MAX_DEPTH: Final = 32
"""Nesting of objects and lists. Standard fields nest four deep (sensorElementList,
sensorElement, sensorReport, value); the rest is room for user extensions, far from
Python's recursion limit."""

MAX_VALUE_CHARS: Final = 65_536
"""Characters in one key or value. URIs stay under 2,000; free text in an extension may
be longer, a page of it is not an event."""

MAX_PRE_HASH_CHARS: Final = 16 * 1024 * 1024
"""Characters of the pre-hash string, counted as values are written: bounds memory."""


class BadEvent(Rejected):
    """An EPCIS event that cannot be hashed: `field` is the path of the bad field
    (`sensorElementList[0].sensorReport[2].value`), `reason` says what is wrong."""

    code = "bad_epcis_event"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field or 'event'}: {reason}")
        self.field = field


class EventTooLarge(TooLarge):
    """An event past one of the limits above; `field` is where the limit was hit."""

    code = "epcis_event_too_large"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field or 'event'}: {reason}")
        self.field = field


# --- vocabularies --------------------------------------------------------------------------
CBV: Final = "https://ref.gs1.org/cbv/"
GS1_VOC: Final = "https://gs1.org/voc/"

STANDARD_PREFIXES: Final[Mapping[str, str]] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": CBV,
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": GS1_VOC,
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dcterms": "http://purl.org/dc/terms/",
}
"""The prefixes the EPCIS 2.0 JSON-LD context (ref.gs1.org/standards/epcis/2.0.0)
defines: every document has them, whatever else its @context adds."""

RDFS_COMMENT: Final = "{http://www.w3.org/2000/01/rdf-schema#}comment"
"""An annotation, JSON-LD's counterpart of an XML comment: not part of the event (the
known answer `epcisDocHavingEventWithComment` hashes without it)."""


def _vocabulary(prefix: str, words: str) -> Mapping[str, str]:
    return {word: prefix + word for word in words.split()}


BIZ_STEPS: Final = _vocabulary(CBV + "BizStep-", """
    accepting arriving assembling collecting commissioning consigning
    creating_class_instance cycle_counting decommissioning departing destroying
    disassembling dispensing encoding entering_exiting holding inspecting installing
    killing loading other packing picking receiving removing repackaging repairing
    replacing reserving retail_selling sampling sensor_reporting shipping
    staging_outbound stock_taking stocking storing transporting unloading unpacking
    void_shipping""")
DISPOSITIONS: Final = _vocabulary(CBV + "Disp-", """
    active available completeness_verified completeness_inferred conformant
    container_closed container_open damaged destroyed dispensed disposed encoded expired
    in_progress in_transit inactive mismatch_instance mismatch_class mismatch_quantity
    needs_replacement no_pedigree_match non_conformant non_sellable_other
    partially_dispensed recalled reserved retail_sold returned sellable_accessible
    sellable_not_accessible stolen unavailable unknown""")
BIZ_TRANSACTION_TYPES: Final = _vocabulary(CBV + "BTT-", """
    bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt""")
SOURCE_DESTINATION_TYPES: Final = _vocabulary(CBV + "SDT-",
                                              "owning_party possessing_party location")
MEASUREMENT_TYPES: Final = _vocabulary(GS1_VOC, """
    AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Radioactivity Altitude
    AmountOfSubstance AmountOfSubstancePerUnitVolume Angle AngularAcceleration
    AngularMomentum AngularVelocity Area Capacitance Conductance Conductivity Count
    Density Dimensionless DoseEquivalent DoseEquivalentRate DynamicViscosity
    ElectricCharge ElectricCurrent ElectricCurrentDensity ElectricFieldStrength Energy
    Exposure Force Frequency Illuminance Inductance Irradiance KinematicViscosity Length
    LinearMomentum Luminance LuminousFlux LuminousIntensity MagneticFlux
    MagneticFluxDensity MagneticVectorPotential Mass MassConcentration MassFlowRate
    MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy MolarMass MolarVolume
    Power Pressure RadiantFlux RadiantIntensity RelativeHumidity Resistance Resistivity
    SolidAngle SpecificVolume Speed SurfaceDensity SurfaceTension Temperature Time Torque
    Voltage Volume VolumeFlowRate VolumeFraction VolumetricFlux Wavenumber""")
SENSOR_ALERT_TYPES: Final = _vocabulary(GS1_VOC, "ALARM_CONDITION ERROR_CONDITION")
COMPONENTS: Final = _vocabulary(CBV + "Comp-", """
    x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle
    easting northing latitude longitude altitude""")
"""The bare words EPCIS 2.0 JSON-LD allows in place of these URIs (its @context)."""

CBV_URN_TYPES: Final[Mapping[str, str]] = {
    "bizstep": "BizStep-", "disp": "Disp-", "btt": "BTT-", "sdt": "SDT-", "er": "ER-"}
"""`urn:epcglobal:cbv:<type>:<word>` -> `https://ref.gs1.org/cbv/<Prefix><word>`. Other
CBV URNs (`bt` transaction identifiers, `mda` attributes) are identifiers, not
vocabulary, and stay as they are."""

ACTIONS: Final = frozenset({"OBSERVE", "ADD", "DELETE"})
_TIME_ZONE_OFFSET = re.compile(r"[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)")


# --- numbers ------------------------------------------------------------------------------
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _double_text(value: float) -> str:
    if value == math.floor(value):
        return str(int(value))  # exact digits of an integral double; -0.0 gives "0"
    return repr(value)  # the shortest string that reads back as the same double


def canonical_number(text: str) -> str | None:
    """The pre-hash form of a decimal or double literal, or None if `text` is not one.

    The literal is read as the nearest IEEE 754 double, as the reference does: the
    known answer `SensorDataExamples.xml` writes the 24-digit `111100001111000011110000`
    as `111100001111000003641344`. Integral values are written as integers,
    others as the shortest decimal that reads back as the same double (`12.1`,
    `1e-05`). A literal beyond the double range stays as written."""
    if len(text) > MAX_VALUE_CHARS or not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    if not math.isfinite(value):
        return None
    return _double_text(value)


def _json_number(value: int | float, field: str) -> str:
    if isinstance(value, int):
        try:
            as_double = float(value)
        except OverflowError:
            return str(value)  # past the double range: as written, like a long literal
        return _double_text(as_double)
    if not math.isfinite(value):
        raise BadEvent(field, "NaN and infinities are not JSON numbers")
    return _double_text(value)


# --- time stamps -----------------------------------------------------------------------------
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                   r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_MS_PER_DAY = 86_400_000


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + (3 if month_index < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def canonical_time(text: str, field: str = "time") -> str:
    """An xsd:dateTimeStamp in UTC with millisecond precision: `2020-03-04T10:00:30.000Z`.

    The third fractional digit is rounded up when the fourth is 5-9 (CBV 2.0), carrying
    into seconds, minutes and days as needed. `24:00:00` is the next day's midnight. A
    time without its offset is refused: EPCIS requires one."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise BadEvent(field, f"{text!r} is not a date-time with an offset "
                              "(YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm))")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4,
                                                                                5, 6))
    fraction = match.group(7) or ""
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and minute <= 59
            and second <= 59 and (hour <= 23 or (hour == 24 and minute == second == 0
                                                 and not fraction.strip("0")))):
        raise BadEvent(field, f"{text!r} is not a valid date and time")
    milliseconds = int((fraction + "000")[:3]) + (len(fraction) > 3 and fraction[3] >= "5")
    zone = match.group(8)
    offset_minutes = 0
    if zone not in ("Z", "z"):
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 23 or zone_minutes > 59:
            raise BadEvent(field, f"{text!r} has an invalid offset")
        offset_minutes = (zone_hours * 60 + zone_minutes) * (1 if zone[0] == "+" else -1)
    instant = ((((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute
                 - offset_minutes) * 60 + second) * 1000 + milliseconds)
    days, in_day = divmod(instant, _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    if not 1 <= year <= 9999:
        raise BadEvent(field, f"{text!r} is outside the years 0001-9999 in UTC")
    seconds, milliseconds = divmod(in_day, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{year:04d}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}"
            f".{milliseconds:03d}Z")


# --- GS1 identifiers: EPC URNs and GS1 Digital Link URIs ----------------------------------------
DIGITAL_LINK_ROOT: Final = "https://id.gs1.org"

_CHARSET_82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
                        "abcdefghijklmnopqrstuvwxyz")
"""GS1 AI encodable character set 82: what serials, lots and asset references hold."""
_CHARSET_39 = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
"""GS1 AI encodable character set 39: component/part references (AI 8010)."""
_URN_RAW = _CHARSET_82 - frozenset("\"%&/<>?")
"""Characters an EPC URN may hold unescaped (TDS 2.0); the rest of set 82 is %-escaped."""
_DL_RAW = frozenset("'-.;=_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
"""Characters a canonical Digital Link value keeps as they are; every other character is
%-escaped with upper-case hex (the known answer `epclist_normalisation` shows the set)."""
_DIGITS = frozenset("0123456789")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _unescape(text: str, raw: frozenset[str], allowed: frozenset[str]) -> str | None:
    """Decode %XX escapes; None if a raw character is not in `raw` or a decoded one not
    in `allowed`."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            match = _ESCAPE.match(text, index)
            if match is None:
                return None
            char = chr(int(match.group(1), 16))
            index += 3
        elif char not in raw:
            return None
        else:
            index += 1
        if char not in allowed:
            return None
        out.append(char)
    return "".join(out)


def _dl_escape(text: str) -> str:
    return "".join(char if char in _DL_RAW else f"%{ord(char):02X}" for char in text)


def _check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of a key's other digits (weights 3, 1 from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def _is_digits(text: str, length: int | None = None) -> bool:
    return bool(text) and set(text) <= _DIGITS and (length is None or len(text) == length)


def _company_prefix(text: str) -> bool:
    return _is_digits(text) and 6 <= len(text) <= 12


def _keyed(prefix: str, reference: str, total: int) -> str | None:
    """Company prefix + reference digits (`total` of them) + check digit, or None."""
    if not (_company_prefix(prefix) and (reference == "" or _is_digits(reference))
            and len(prefix) + len(reference) == total):
        return None  # a 12-digit prefix leaves an empty reference in 13-digit keys
    return prefix + reference + _check_digit(prefix + reference)


def _gtin(prefix: str, indicator_reference: str) -> str | None:
    if not (_company_prefix(prefix) and _is_digits(indicator_reference)
            and len(prefix) + len(indicator_reference) == 13):
        return None
    body = indicator_reference[0] + prefix + indicator_reference[1:]
    return body + _check_digit(body)


def _urn_component(text: str, max_chars: int, *, empty: bool = False) -> str | None:
    """A TDS 2.0 alphanumeric URN component (serial, lot, reference) decoded, or None."""
    value = _unescape(text, _URN_RAW, _CHARSET_82)
    if value is None or len(value) > max_chars or (not value and not empty):
        return None
    return value


def _numeric_component(text: str, max_digits: int, *, empty: bool = False) -> str | None:
    if text == "" and empty:
        return ""
    return text if _is_digits(text) and len(text) <= max_digits else None


def _three(body: str) -> tuple[str, str, str]:
    """Company prefix, reference, and the rest (a serial may itself hold dots); a
    missing part is "%" (an invalid component: every conversion refuses it)."""
    prefix, _, rest = body.partition(".")
    reference, dot, last = rest.partition(".")
    return prefix, reference, last if dot else "%"


def _sgtin(body: str) -> str | None:
    prefix, reference, serial_text = _three(body)
    gtin, serial = _gtin(prefix, reference), _urn_component(serial_text, 20)
    return None if gtin is None or serial is None else f"/01/{gtin}/21/{_dl_escape(serial)}"


def _upui(body: str) -> str | None:
    prefix, reference, tpx_text = _three(body)
    gtin, tpx = _gtin(prefix, reference), _urn_component(tpx_text, 28)
    return None if gtin is None or tpx is None else f"/01/{gtin}/235/{_dl_escape(tpx)}"


def _sscc(body: str) -> str | None:
    prefix, _, reference = body.partition(".")
    if not (_company_prefix(prefix) and _is_digits(reference)
            and len(prefix) + len(reference) == 17):
        return None
    digits = reference[0] + prefix + reference[1:]
    return f"/00/{digits}{_check_digit(digits)}"


def _sgln(body: str) -> str | None:
    prefix, reference, extension_text = _three(body)
    key, extension = _keyed(prefix, reference, 12), _urn_component(extension_text, 20)
    if key is None or extension is None:
        return None
    return f"/414/{key}" if extension == "0" else f"/414/{key}/254/{_dl_escape(extension)}"


def _grai(body: str) -> str | None:
    prefix, reference, serial_text = _three(body)
    key, serial = _keyed(prefix, reference, 12), _urn_component(serial_text, 16)
    return None if key is None or serial is None else f"/8003/0{key}{_dl_escape(serial)}"


def _gdti(body: str) -> str | None:
    prefix, reference, serial_text = _three(body)
    key, serial = _keyed(prefix, reference, 12), _urn_component(serial_text, 17, empty=True)
    return None if key is None or serial is None else f"/253/{key}{_dl_escape(serial)}"


def _sgcn(body: str) -> str | None:
    prefix, reference, serial_text = _three(body)
    key, serial = _keyed(prefix, reference, 12), _numeric_component(serial_text, 12)
    return None if key is None or serial is None else f"/255/{key}{serial}"


def _reference_key(ai: str) -> Callable[[str], str | None]:
    """GIAI and GINC: company prefix and an alphanumeric reference, 30 characters in all."""
    def convert(body: str) -> str | None:
        prefix, _, reference_text = body.partition(".")
        reference = _urn_component(reference_text, 30 - len(prefix))
        if not _company_prefix(prefix) or reference is None:
            return None
        return f"/{ai}/{prefix}{_dl_escape(reference)}"
    return convert


def _numeric_key(ai: str, total: int) -> Callable[[str], str | None]:
    """GSRN, GSRN-P, GSIN, PGLN: company prefix and reference digits, a check digit."""
    def convert(body: str) -> str | None:
        prefix, _, reference = body.partition(".")
        key = _keyed(prefix, reference, total)
        return None if key is None else f"/{ai}/{key}"
    return convert


def _cpi_reference(prefix: str, text: str) -> str | None:
    reference = _unescape(text, _CHARSET_39 - {"#", "/"}, _CHARSET_39)
    if not _company_prefix(prefix) or not reference or len(prefix) + len(reference) > 30:
        return None
    return f"/8010/{prefix}{_dl_escape(reference)}"


def _cpi(body: str) -> str | None:
    prefix, reference_text, serial_text = _three(body)
    path, serial = _cpi_reference(prefix, reference_text), _numeric_component(serial_text, 12)
    return None if path is None or serial is None else f"{path}/8011/{serial}"


def _itip(body: str) -> str | None:
    parts = body.split(".", 4)
    if len(parts) != 5:
        return None
    prefix, reference, piece, total_pieces, serial_text = parts
    gtin, serial = _gtin(prefix, reference), _urn_component(serial_text, 20)
    if gtin is None or serial is None or not (_is_digits(piece, 2)
                                              and _is_digits(total_pieces, 2)):
        return None
    return f"/8006/{gtin}{piece}{total_pieces}/21/{_dl_escape(serial)}"


_EPC_SCHEMES: Final[Mapping[str, Callable[[str], str | None]]] = {
    "sgtin": _sgtin, "upui": _upui, "sscc": _sscc, "sgln": _sgln, "grai": _grai,
    "gdti": _gdti, "sgcn": _sgcn, "giai": _reference_key("8004"),
    "ginc": _reference_key("401"), "gsrn": _numeric_key("8018", 17),
    "gsrnp": _numeric_key("8017", 17), "gsin": _numeric_key("402", 16),
    "pgln": _numeric_key("417", 12), "cpi": _cpi, "itip": _itip}
"""EPC URI schemes with a GS1 key (TDS 2.0 §6) and their Digital Link path."""


def _epc_id(scheme: str, body: str) -> str | None:
    """`urn:epc:id:<scheme>:<body>` as a Digital Link path, or None."""
    convert = _EPC_SCHEMES.get(scheme)
    return None if convert is None else convert(body)


def _epc_class(scheme: str, body: str) -> str | None:
    """`urn:epc:class:lgtin:<prefix>.<reference>.<lot>` as a Digital Link path, or None."""
    if scheme != "lgtin":
        return None
    prefix, reference, lot_text = _three(body)
    gtin = _gtin(prefix, reference)
    lot = _urn_component(lot_text, 20)
    return None if gtin is None or lot is None else f"/01/{gtin}/10/{_dl_escape(lot)}"


def _epc_pattern(scheme: str, body: str) -> str | None:
    """An EPC pattern whose only wildcard is the serial: the class it names, or None.
    (The reference converts exactly these schemes; a pattern wider than one class, or of
    a scheme without one, stays a URN.)"""
    parts = body.split(".")
    if parts[-1] != "*" or "*" in parts[:-1]:
        return None
    if scheme in ("sgtin", "upui") and len(parts) == 3:
        gtin = _gtin(parts[0], parts[1])
        return None if gtin is None else f"/01/{gtin}"
    if scheme in ("grai", "gdti", "sgcn") and len(parts) == 3:
        key = _keyed(parts[0], parts[1], 12)
        ai = {"grai": "8003/0", "gdti": "253/", "sgcn": "255/"}[scheme]
        return None if key is None else f"/{ai}{key}"
    if scheme == "cpi" and len(parts) == 3:
        return _cpi_reference(parts[0], parts[1])
    if scheme == "itip" and len(parts) == 5:
        gtin = _gtin(parts[0], parts[1])
        if gtin is None or not (_is_digits(parts[2], 2) and _is_digits(parts[3], 2)):
            return None
        return f"/8006/{gtin}{parts[2]}{parts[3]}"
    return None


_EPC_URN = re.compile(r"urn:epc:(id|class|idpat):([a-z]+):(.+)")


def epc_to_digital_link(urn: str) -> str | None:
    """The canonical GS1 Digital Link URI of an EPC URI (`urn:epc:id:`), EPC class URI
    (`urn:epc:class:lgtin:`) or EPC pattern URI (`urn:epc:idpat:`), per GS1 TDS 2.0; None
    if `urn` is not one with a GS1 key (gid, usdod, adi, bic, imovn, tag and raw URIs
    keep their form)."""
    match = _EPC_URN.fullmatch(urn)
    if match is None:
        return None
    kind, scheme, body = match.groups()
    convert = {"id": _epc_id, "class": _epc_class, "idpat": _epc_pattern}[kind]
    path = convert(scheme, body)
    return None if path is None else DIGITAL_LINK_ROOT + path


def _alphanumeric(max_chars: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return value if 1 <= len(value) <= max_chars and set(value) <= _CHARSET_82 else None
    return check


def _numeric(*lengths: int, pad_to: int | None = None) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not (_is_digits(value) and len(value) in lengths):
            return None
        return value.rjust(pad_to, "0") if pad_to else value
    return check


def _numeric_then(digits: int, rest_max: int,
                  charset: frozenset[str]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        head, tail = value[:digits], value[digits:]
        if not _is_digits(head, digits) or len(tail) > rest_max or not set(tail) <= charset:
            return None
        return value
    return check


def _reference(max_chars: int, charset: frozenset[str]) -> Callable[[str], str | None]:
    """A company prefix's reference: starts with a digit (the prefix), `charset` after."""
    def check(value: str) -> str | None:
        if not (1 <= len(value) <= max_chars and value[0] in _DIGITS
                and set(value) <= charset):
            return None
        return value
    return check


_DL_KEYS: Final[Mapping[str, Callable[[str], str | None]]] = {
    "00": _numeric(18),
    "01": _numeric(8, 12, 13, 14, pad_to=14),
    "253": _numeric_then(13, 17, _CHARSET_82),
    "255": _numeric_then(13, 12, _DIGITS),
    "401": _reference(30, _CHARSET_82),
    "402": _numeric(17),
    "414": _numeric(13),
    "417": _numeric(13),
    "8003": _numeric_then(14, 16, _CHARSET_82),
    "8004": _reference(30, _CHARSET_82),
    "8006": _numeric(18),
    "8010": _reference(30, _CHARSET_39),
    "8017": _numeric(18),
    "8018": _numeric(18),
}
"""The GS1 primary keys a Digital Link can name, with the format of their values."""

_DL_QUALIFIERS: Final[Mapping[str, tuple[tuple[str, Callable[[str], str | None]], ...]]] = {
    "01": (("22", _alphanumeric(20)), ("10", _alphanumeric(20)), ("21", _alphanumeric(20))),
    "8006": (("22", _alphanumeric(20)), ("10", _alphanumeric(20)), ("21", _alphanumeric(20))),
    "414": (("254", _alphanumeric(20)),),
    "8010": (("8011", _numeric(*range(1, 13))),),
}
"""Key qualifiers, in the order a Digital Link writes them."""

_DL_SHORT_NAMES: Final[Mapping[str, str]] = {
    "sscc": "00", "gtin": "01", "gdti": "253", "gcn": "255", "ginc": "401", "gsin": "402",
    "gln": "414", "party": "417", "grai": "8003", "giai": "8004", "itip": "8006",
    "cpid": "8010", "gsrnp": "8017", "gsrn": "8018",
    "cpv": "22", "lot": "10", "ser": "21", "glnx": "254", "cpsn": "8011"}
"""GS1 Digital Link 1.2 short names of the keys and qualifiers above."""

_DL_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]+)(/[^?#]*)(?:\?[^#]*)?(?:#.*)?")


def _dl_value(segment: str, check: Callable[[str], str | None]) -> str | None:
    value = _unescape(segment, _CHARSET_82, _CHARSET_82)
    return None if value is None else check(value)


def _dl_path(segments: Sequence[str]) -> str | None:
    """Primary key and qualifiers from `segments` (all of them), most granular only."""
    key = _DL_SHORT_NAMES.get(segments[0], segments[0])
    if key not in _DL_KEYS or len(segments) % 2 != 0:
        return None
    key_value = _dl_value(segments[1], _DL_KEYS[key])
    if key_value is None:
        return None
    if key == "01" and len(segments) == 4 and segments[2] == "235":
        tpx = _dl_value(segments[3], _alphanumeric(28))
        return None if tpx is None else f"/01/{key_value}/235/{_dl_escape(tpx)}"
    allowed = list(_DL_QUALIFIERS.get(key, ()))
    found: dict[str, str] = {}
    for index in range(2, len(segments), 2):
        qualifier = _DL_SHORT_NAMES.get(segments[index], segments[index])
        while allowed and allowed[0][0] != qualifier:
            allowed.pop(0)
        if not allowed:
            return None  # unknown qualifier, or out of order
        value = _dl_value(segments[index + 1], allowed.pop(0)[1])
        if value is None:
            return None
        found[qualifier] = value
    path = f"/{key}/{_dl_escape(key_value)}"
    for qualifier in ("21", "10") if key in ("01", "8006") else ("254", "8011"):
        if qualifier in found:  # 22 (consumer product variant) is coarser: never kept
            return f"{path}/{qualifier}/{_dl_escape(found[qualifier])}"
    return path


def canonical_digital_link(uri: str) -> str | None:
    """The constrained canonical form of a GS1 Digital Link URI (CBV 2.0): on
    `https://id.gs1.org`, with no query or fragment, numeric key codes, GTINs in 14
    digits and only the most granular identification (`01/x/21/s`, `01/x/10/l`,
    `414/x/254/e`...). None if `uri` is not an http(s) URI naming a GS1 key; a path
    prefix before the key is allowed, as in any Digital Link."""
    match = _DL_URI.fullmatch(uri)
    if match is None or match.group(1).lower() not in ("http", "https"):
        return None
    segments = match.group(3).split("/")[1:]
    for start in range(len(segments) - 1):
        if _DL_SHORT_NAMES.get(segments[start], segments[start]) in _DL_KEYS:
            path = _dl_path(segments[start:])
            if path is not None:
                return DIGITAL_LINK_ROOT + path
    return None


def _cbv_urn(value: str) -> str | None:
    kind, _, word = value[len("urn:epcglobal:cbv:"):].partition(":")
    prefix = CBV_URN_TYPES.get(kind)
    return None if prefix is None or not word else CBV + prefix + word


# --- the event ------------------------------------------------------------------------------
def context_prefixes(*contexts: Any) -> dict[str, str]:
    """Prefix -> namespace that a document's (and an event's) @context declare, with the
    EPCIS context's own: the rule the hash expands compact IRIs by."""
    return _context_prefixes(*contexts)


def _context_prefixes(*contexts: Any) -> dict[str, str]:
    """Prefix -> namespace from JSON-LD @context values (an IRI string, an object, or a
    list of them). Remote contexts other than EPCIS's cannot be read by a pure
    function: their terms are unknown, so keys using them are refused."""
    prefixes = dict(STANDARD_PREFIXES)
    for context in contexts:
        items = context if isinstance(context, list) else [context]
        for item in items:
            if item is None or isinstance(item, str):
                continue
            if not isinstance(item, Mapping):
                raise BadEvent("@context", "is neither an IRI, an object nor a list of them")
            for term, definition in item.items():
                if not isinstance(term, str) or term.startswith("@") or ":" in term:
                    continue  # keywords, and types given to compact IRIs
                iri = definition.get("@id") if isinstance(definition, Mapping) else definition
                if isinstance(iri, str) and iri and not iri.startswith("@"):
                    prefixes[term] = iri
    return prefixes


def _path(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


_Kind = Literal["content", "time", "number", "boolean"]
"""How a standard field's value is normalised, when it is not a vocabulary (a mapping of
bare words). URIs and strings alike are normalised by their content (`_scalar`): the
reference looks at the value, not at the field, and so must we."""
_CONTENT: Final = "content"
_TIME_KIND: Final = "time"
_NUMBER_KIND: Final = "number"
_BOOLEAN: Final = "boolean"

SENSOR_METADATA_ORDER: Final[tuple[tuple[str, _Kind], ...]] = (
    ("time", _TIME_KIND), ("startTime", _TIME_KIND), ("endTime", _TIME_KIND),
    ("deviceID", _CONTENT), ("deviceMetadata", _CONTENT), ("rawData", _CONTENT),
    ("dataProcessingMethod", _CONTENT), ("bizRules", _CONTENT))
SENSOR_REPORT_ORDER: Final[tuple[tuple[str, _Kind | Mapping[str, str]], ...]] = (
    ("type", MEASUREMENT_TYPES), ("exception", SENSOR_ALERT_TYPES), ("deviceID", _CONTENT),
    ("deviceMetadata", _CONTENT), ("rawData", _CONTENT), ("dataProcessingMethod", _CONTENT),
    ("time", _TIME_KIND), ("microorganism", _CONTENT), ("chemicalSubstance", _CONTENT),
    ("value", _NUMBER_KIND), ("component", COMPONENTS), ("stringValue", _CONTENT),
    ("booleanValue", _BOOLEAN), ("hexBinaryValue", _CONTENT), ("uriValue", _CONTENT),
    ("minValue", _NUMBER_KIND), ("maxValue", _NUMBER_KIND), ("meanValue", _NUMBER_KIND),
    ("sDev", _NUMBER_KIND), ("percRank", _NUMBER_KIND), ("percValue", _NUMBER_KIND),
    ("uom", _CONTENT), ("coordinateReferenceSystem", _CONTENT))
QUANTITY_ELEMENT_ORDER: Final[tuple[tuple[str, _Kind], ...]] = (
    ("epcClass", _CONTENT), ("quantity", _NUMBER_KIND), ("uom", _CONTENT))
AFTER_ACTION: Final[tuple[tuple[str, _Kind | Mapping[str, str]], ...]] = (
    ("transformationID", _CONTENT), ("bizStep", BIZ_STEPS), ("disposition", DISPOSITIONS))
SENSOR_REPORT_UNORDERED: Final = frozenset({"bizRules"})
"""A sensor report's standard fields that the canonical order does not name (EPCIS 2.0
JSON allows `bizRules` there, XML as an attribute): the reference writes them, under
their path, with the extensions at the end (known answer `SensorDataExamples`)."""

EPC_LISTS: Final = ("epcList", "inputEPCList", "childEPCs", "outputEPCList")
QUANTITY_LISTS: Final = ("quantityList", "childQuantityList", "inputQuantityList",
                         "outputQuantityList")
SOURCE_DESTINATION_LISTS: Final = (("sourceList", "source"), ("destinationList", "destination"))
NOT_HASHED: Final = frozenset({"eventID", "recordTime", "errorDeclaration", "@context"})
"""Fields outside the hash: an event's ID may be this hash; recordTime is the
repository's; an error declaration later marks the same event (it keeps its hash)."""
STANDARD_FIELDS: Final = frozenset({
    "type", "eventTime", "eventTimeZoneOffset", "certificationInfo", *EPC_LISTS,
    "parentID", *QUANTITY_LISTS, "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "sensorElementList",
    "bizTransactionList", "sourceList", "destinationList", "ilmd"}) | NOT_HASHED


class _Canon:
    """Writes one event's pre-hash string, counting against the limits as it goes."""

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes
        self.nodes = 0
        self.chars = 0

    # --- accounting and shapes ---
    def _count(self, field: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_EVENT_NODES:
            raise EventTooLarge(field, f"more than {MAX_EVENT_NODES} values in one event")
        if depth > MAX_DEPTH:
            raise EventTooLarge(field, f"nested more than {MAX_DEPTH} deep")

    def _emit(self, text: str, field: str) -> str:
        self.chars += len(text)
        if self.chars > MAX_PRE_HASH_CHARS:
            raise EventTooLarge(field, f"pre-hash string past {MAX_PRE_HASH_CHARS} characters")
        return text

    def _object(self, value: Any, field: str, depth: int) -> Mapping[str, Any]:
        self._count(field, depth)
        if not isinstance(value, Mapping):
            raise BadEvent(field, f"must be an object, not {_json_type(value)}")
        for key in value:
            if not isinstance(key, str):
                raise BadEvent(field, f"key {key!r} is not a string")
            if len(key) > MAX_VALUE_CHARS:
                raise EventTooLarge(field, f"a key is longer than {MAX_VALUE_CHARS} characters")
        return value

    def _list(self, value: Any, field: str, depth: int) -> Sequence[Any]:
        self._count(field, depth)
        if not isinstance(value, list | tuple):
            raise BadEvent(field, f"must be a list, not {_json_type(value)}")
        if len(value) > MAX_LIST_ITEMS:
            raise EventTooLarge(field, f"more than {MAX_LIST_ITEMS} items")
        return value

    # --- keys ---
    def _expand_key(self, key: str, field: str) -> str | None:
        """`{namespace}local` for an extension key, None for an unqualified name."""
        if key.startswith("{"):
            close = key.find("}")
            if close < 2 or close == len(key) - 1:
                raise BadEvent(field, f"key {key!r} is not {{namespace}}localName")
            return key
        prefix, colon, local = key.partition(":")
        if not colon:
            return None
        if prefix in self.prefixes and not local.startswith("//"):
            if not local:
                raise BadEvent(field, f"key {key!r} has no local name")
            return "{" + self.prefixes[prefix] + "}" + local
        if local.startswith("//") and prefix.lower() in ("http", "https"):
            cut = max(key.rfind("/"), key.rfind("#")) + 1
            if cut <= len(prefix) + 3 or cut == len(key):
                raise BadEvent(field, f"key {key!r} has no local name after its namespace")
            return "{" + key[:cut] + "}" + key[cut:]
        raise BadEvent(field, f"key {key!r}: prefix {prefix!r} is not declared in @context")

    # --- values ---
    def _string(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise BadEvent(field, f"must be a string, not {_json_type(value)}")
        text = value.strip()
        if len(text) > MAX_VALUE_CHARS:
            raise EventTooLarge(field, f"longer than {MAX_VALUE_CHARS} characters")
        return text

    def _scalar(self, value: Any, field: str) -> str:
        """Any value: booleans, numbers, and strings normalised by their content."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return _json_number(value, field)
        if isinstance(value, str):
            text = self._string(value, field)
            number = canonical_number(text)
            return number if number is not None else self._iri(text)
        raise BadEvent(field, f"must be a string, number or boolean, not {_json_type(value)}")

    def _iri(self, text: str) -> str:
        if text.startswith("urn:epcglobal:cbv:"):
            return _cbv_urn(text) or text
        if text.startswith("urn:epc:"):
            return epc_to_digital_link(text) or text
        if text[:8].lower().startswith(("http://", "https://")):
            return canonical_digital_link(text) or text
        prefix, colon, rest = text.partition(":")
        if colon and prefix in self.prefixes and not rest.startswith("//"):
            return self.prefixes[prefix] + rest
        return text

    def _value(self, value: Any, kind: _Kind | Mapping[str, str], field: str) -> str:
        """A standard field's value; "" when it is empty (treated as absent)."""
        if isinstance(kind, Mapping):  # a vocabulary: bare words allowed
            text = self._string(value, field)
            if text in kind:
                return kind[text]
            if text and ":" not in text:
                raise BadEvent(field, f"{text!r} is neither a CBV term nor a URI")
            return self._scalar(text, field) if text else ""
        if kind == _TIME_KIND:
            text = self._string(value, field)
            return canonical_time(text, field) if text else ""
        if kind == _NUMBER_KIND:
            if isinstance(value, bool):
                raise BadEvent(field, "must be a number, not a boolean")
            if isinstance(value, int | float):
                return _json_number(value, field)
            text = self._string(value, field)
            number = canonical_number(text)
            if number is None and text:
                raise BadEvent(field, f"{text!r} is not a number")
            return number or ""
        if kind == _BOOLEAN:
            if isinstance(value, bool):
                return "true" if value else "false"
            text = self._string(value, field)
            if text in ("true", "1"):
                return "true"
            if text in ("false", "0"):
                return "false"
            if text:
                raise BadEvent(field, f"{text!r} is not a boolean")
            return ""
        if isinstance(value, str) and not value.strip():
            return ""
        return self._scalar(value, field)

    def _pair(self, name: str, value: Any, kind: _Kind | Mapping[str, str], field: str) -> str:
        text = self._value(value, kind, field)
        return self._emit(f"{name}={text}", field) if text else ""

    # --- extensions ---
    def _extension(self, name: str, value: Any, field: str, depth: int) -> list[str]:
        """`name=value`, or `name` and its children sorted; one string per list item."""
        if isinstance(value, list | tuple):
            items: list[str] = []
            for index, item in enumerate(self._list(value, field, depth)):
                items.extend(self._extension(name, item, _path(field, index), depth + 1))
            return items
        if not isinstance(value, Mapping):
            self._count(field, depth)
            text = self._scalar(value, field)  # an empty element is its name alone
            return [self._emit(f"{name}={text}" if text else name, field)]
        obj = self._object(value, field, depth)
        head = name
        if "@value" in obj:
            literal = self._scalar(obj["@value"], _path(field, "@value"))
            head = f"{name}={literal}" if literal else name
        children: list[str] = []
        for key, child in obj.items():
            if key in ("@value", "@type", "@language"):
                continue
            child_field = _path(field, key)
            if key.startswith("@"):
                raise BadEvent(child_field, f"JSON-LD keyword {key} is not supported here")
            expanded = self._expand_key(key, child_field)
            if expanded == RDFS_COMMENT:
                continue
            children.extend(self._extension(expanded or key, child, child_field, depth + 1))
        return [self._emit(head, field) + "".join(sorted(children))]

    def _extensions_of(self, obj: Mapping[str, Any], standard: frozenset[str], field: str,
                       depth: int) -> list[str]:
        """The extension members of a standard object, sorted; unknown plain names refused."""
        out: list[str] = []
        for key, value in obj.items():
            if key in standard:
                continue
            child_field = _path(field, key)
            expanded = self._expand_key(key, child_field)
            if expanded is None:
                raise BadEvent(child_field, "is not an EPCIS field here; extensions need a "
                                            "namespace prefix")
            if expanded != RDFS_COMMENT:
                out.extend(self._extension(expanded, value, child_field, depth + 1))
        return sorted(out)

    # --- standard structures ---
    def _items(self, name: str, item: str, values: Any, kind: _Kind | Mapping[str, str],
               field: str, depth: int) -> str:
        strings = []
        for index, value in enumerate(self._list(values, field, depth)):
            self._count(field, depth + 1)
            text = self._pair(item, value, kind, _path(field, index))
            if text:
                strings.append(text)
        return self._emit(name, field) + "".join(sorted(strings)) if strings else ""

    def _quantity_list(self, name: str, values: Any, field: str, depth: int) -> str:
        elements = []
        for index, value in enumerate(self._list(values, field, depth)):
            element_field = _path(field, index)
            element = self._object(value, element_field, depth + 1)
            self._only(element, [name for name, _ in QUANTITY_ELEMENT_ORDER], element_field)
            if "epcClass" not in element:
                raise BadEvent(element_field, "a quantity element needs its epcClass")
            text = "".join(self._pair(key, element[key], kind, _path(element_field, key))
                           for key, kind in QUANTITY_ELEMENT_ORDER if key in element)
            if text:
                elements.append(self._emit("quantityElement", element_field) + text)
        return self._emit(name, field) + "".join(sorted(elements)) if elements else ""

    def _only(self, obj: Mapping[str, Any], names: Sequence[str], field: str) -> None:
        for key in obj:
            if key not in names:
                raise BadEvent(_path(field, key), f"not a field here (expected {', '.join(names)})")

    def _location(self, name: str, value: Any, field: str, depth: int) -> str:
        obj = self._object(value, field, depth)
        identifier = (self._pair("id", obj["id"], _CONTENT, _path(field, "id"))
                      if "id" in obj else "")
        extensions = self._extensions_of(obj, frozenset({"id"}), field, depth)
        if not identifier and not extensions:
            return ""
        if not identifier:
            raise BadEvent(field, f"{name} needs its id")
        return self._emit(name, field) + identifier + "".join(extensions)

    def _persistent_disposition(self, value: Any, field: str, depth: int) -> str:
        obj = self._object(value, field, depth)
        self._only(obj, ("set", "unset"), field)
        parts = []
        for key in ("set", "unset"):
            if key in obj:
                key_field = _path(field, key)
                parts.extend(sorted(
                    text for index, item in enumerate(self._list(obj[key], key_field, depth + 1))
                    if (text := self._pair(key, item, DISPOSITIONS, _path(key_field, index)))))
        return self._emit("persistentDisposition", field) + "".join(parts) if parts else ""

    def _typed_list(self, name: str, item: str, vocabulary: Mapping[str, str], values: Any,
                    field: str, depth: int, *, type_required: bool) -> str:
        entries = []
        for index, value in enumerate(self._list(values, field, depth)):
            entry_field = _path(field, index)
            entry = self._object(value, entry_field, depth + 1)
            self._only(entry, ("type", item), entry_field)
            identifier = (self._pair(item, entry[item], _CONTENT, _path(entry_field, item))
                          if item in entry else "")
            kind = (self._pair("type", entry["type"], vocabulary, _path(entry_field, "type"))
                    if "type" in entry else "")
            if not identifier:
                raise BadEvent(entry_field, f"needs its {item}")
            if not kind and type_required:
                raise BadEvent(entry_field, "needs its type")
            entries.append(kind + identifier)
        return self._emit(name, field) + "".join(sorted(entries)) if entries else ""

    def _sensor_element(self, value: Any, field: str, depth: int) -> tuple[str, str]:
        """(the element's string, its unordered standard fields as a path string)."""
        element = self._object(value, field, depth)
        parts: list[str] = []
        if "sensorMetadata" in element:
            metadata_field = _path(field, "sensorMetadata")
            metadata = self._object(element["sensorMetadata"], metadata_field, depth + 1)
            names = frozenset(name for name, _ in SENSOR_METADATA_ORDER)
            text = "".join(self._pair(name, metadata[name], kind, _path(metadata_field, name))
                           for name, kind in SENSOR_METADATA_ORDER if name in metadata)
            text += "".join(self._extensions_of(metadata, names, metadata_field, depth + 1))
            if text:
                parts.append(self._emit("sensorMetadata", metadata_field) + text)
        reports: list[str] = []
        unordered: list[str] = []
        if "sensorReport" in element:
            reports_field = _path(field, "sensorReport")
            for index, report_value in enumerate(self._list(element["sensorReport"],
                                                            reports_field, depth + 1)):
                report, extra = self._sensor_report(report_value, _path(reports_field, index),
                                                    depth + 2)
                if report:
                    reports.append(report)
                if extra:
                    unordered.append(extra)
        parts.extend(sorted(reports))
        parts.extend(self._extensions_of(element, frozenset({"sensorMetadata", "sensorReport"}),
                                         field, depth))
        text = self._emit("sensorElement", field) + "".join(parts) if parts else ""
        extra = self._emit("sensorElement", field) + "".join(sorted(unordered)) if unordered else ""
        return text, extra

    def _sensor_report(self, value: Any, field: str, depth: int) -> tuple[str, str]:
        report = self._object(value, field, depth)
        names = frozenset(name for name, _ in SENSOR_REPORT_ORDER) | SENSOR_REPORT_UNORDERED
        text = "".join(self._pair(name, report[name], kind, _path(field, name))
                       for name, kind in SENSOR_REPORT_ORDER if name in report)
        text += "".join(self._extensions_of(report, names, field, depth))
        extra = "".join(self._pair(name, report[name], _CONTENT, _path(field, name))
                        for name in sorted(SENSOR_REPORT_UNORDERED) if name in report)
        return (self._emit("sensorReport", field) + text if text else "",
                self._emit("sensorReport", field) + extra if extra else "")

    def _sensor_element_list(self, values: Any, field: str, depth: int) -> tuple[str, str]:
        elements: list[str] = []
        unordered: list[str] = []
        for index, value in enumerate(self._list(values, field, depth)):
            text, extra = self._sensor_element(value, _path(field, index), depth + 1)
            if text:
                elements.append(text)
            if extra:
                unordered.append(extra)
        name = "sensorElementList"
        return (self._emit(name, field) + "".join(sorted(elements)) if elements else "",
                self._emit(name, field) + "".join(sorted(unordered)) if unordered else "")

    def _ilmd(self, value: Any, field: str, depth: int) -> str:
        obj = self._object(value, field, depth)
        return self._emit("ilmd", field) + "".join(
            self._extensions_of(obj, frozenset(), field, depth))

    # --- the event ---
    def event(self, event: Any) -> str:
        event = self._object(event, "", 0)
        event_type = event.get("type")
        if event_type not in EVENT_TYPES:
            raise BadEvent("type", f"must be one of {', '.join(sorted(EVENT_TYPES))}, "
                                   f"not {event_type!r}")
        for required in ("eventTime", "eventTimeZoneOffset"):
            if required not in event:
                raise BadEvent(required, "is required")
        offset = self._string(event["eventTimeZoneOffset"], "eventTimeZoneOffset")
        if not _TIME_ZONE_OFFSET.fullmatch(offset):
            raise BadEvent("eventTimeZoneOffset", f"{offset!r} is not -14:00..+14:00 as ±hh:mm")
        event_time = canonical_time(self._string(event["eventTime"], "eventTime"), "eventTime")
        head = [f"eventType={event_type}", f"eventTime={event_time}",
                f"eventTimeZoneOffset={offset}"]
        if "certificationInfo" in event:
            info = event["certificationInfo"]
            head.append("".join(sorted(
                text for index, item in enumerate(
                    self._list(info if isinstance(info, list) else [info],
                               "certificationInfo", 1))
                if (text := self._pair("certificationInfo", item, _CONTENT,
                                       _path("certificationInfo", index))))))
        for name in ("parentID", "epcList", "inputEPCList", "childEPCs", "quantityList",
                     "childQuantityList", "inputQuantityList", "outputEPCList",
                     "outputQuantityList"):
            if name not in event:
                continue
            if name == "parentID":
                head.append(self._pair(name, event[name], _CONTENT, name))
            elif name in EPC_LISTS:
                head.append(self._items(name, "epc", event[name], _CONTENT, name, 1))
            else:
                head.append(self._quantity_list(name, event[name], name, 1))
        if "action" in event:
            action = self._string(event["action"], "action")
            if action not in ACTIONS:
                raise BadEvent("action", f"must be OBSERVE, ADD or DELETE, not {action!r}")
            head.append(f"action={action}")
        for name, kind in AFTER_ACTION:
            if name in event:
                head.append(self._pair(name, event[name], kind, name))
        if "persistentDisposition" in event:
            head.append(self._persistent_disposition(event["persistentDisposition"],
                                                     "persistentDisposition", 1))
        for name in ("readPoint", "bizLocation"):
            if name in event:
                head.append(self._location(name, event[name], name, 1))
        tail: list[str] = []
        if "sensorElementList" in event:
            sensors, unordered = self._sensor_element_list(event["sensorElementList"],
                                                           "sensorElementList", 1)
            head.append(sensors)
            tail.append(unordered)
        if "bizTransactionList" in event:
            tail.append(self._typed_list("bizTransactionList", "bizTransaction",
                                         BIZ_TRANSACTION_TYPES, event["bizTransactionList"],
                                         "bizTransactionList", 1, type_required=False))
        for name, item in SOURCE_DESTINATION_LISTS:
            if name in event:
                tail.append(self._typed_list(name, item, SOURCE_DESTINATION_TYPES,
                                             event[name], name, 1, type_required=True))
        if "ilmd" in event:
            tail.append(self._ilmd(event["ilmd"], "ilmd", 1))
        for key in event:
            if key.startswith("@") and key != "@context":
                raise BadEvent(key, "JSON-LD keywords other than @context are not supported")
        tail.extend(self._extensions_of(event, STANDARD_FIELDS, "", 0))
        return "".join(head) + "".join(sorted(text for text in tail if text))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


Context = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | None
"""A JSON-LD `@context` value: an IRI, an object of term definitions, or a list of them."""


def pre_hash_string(event: Mapping[str, Any], *, context: Context = None) -> str:
    """The canonical string CBV 2.0 hashes for `event`, one EPCIS 2.0 event as its
    JSON-LD object (an item of an EPCISDocument's `epcisBody.eventList`).

    `context` is the document's `@context` (an IRI, an object, or a list of them): it
    declares the prefixes of the event's extension keys and compact IRIs. The EPCIS 2.0
    context's own prefixes (`cbv`, `gs1`, `cbvmda`...) are always known, and the event's
    own `@context`, if any, is read after the document's. Keys written `{namespace}local`
    are taken as already expanded (the XML reader, epcis_xml.py, writes them so).

    Raises BadEvent naming the field for input that is not an EPCIS event, and
    EventTooLarge past the limits of this module."""
    own_context = event.get("@context") if isinstance(event, Mapping) else None
    return _Canon(_context_prefixes(context, own_context)).event(event)


def event_hash(event: Mapping[str, Any], *, context: Context = None) -> str:
    """The CBV 2.0 event hash ID of `event`: `ni:///sha-256;<64 hex>?ver=CBV2.0`, the
    SHA-256 of its pre-hash string in UTF-8 (see `pre_hash_string` for the arguments)."""
    digest = hashlib.sha256(pre_hash_string(event, context=context).encode("utf-8"))
    return f"ni:///sha-256;{digest.hexdigest()}?ver={CBV_VERSION}"


def document_events(document: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], Context]:
    """The events of a JSON-LD EPCISDocument or EPCISQueryDocument and its @context, the
    arguments `event_hash` takes for each."""
    if not isinstance(document, Mapping):
        raise BadEvent("", "an EPCIS document is a JSON object")
    body = document.get("epcisBody")
    if not isinstance(body, Mapping):
        raise BadEvent("epcisBody", "is missing or not an object")
    if "queryResults" in body:
        results = body["queryResults"]
        inner = results.get("resultsBody") if isinstance(results, Mapping) else None
        events = inner.get("eventList") if isinstance(inner, Mapping) else None
        where = "epcisBody.queryResults.resultsBody.eventList"
    else:
        events = body.get("eventList")
        where = "epcisBody.eventList"
    if not isinstance(events, list):
        raise BadEvent(where, "is missing or not a list")
    if len(events) > MAX_LIST_ITEMS:
        raise EventTooLarge(where, f"more than {MAX_LIST_ITEMS} events")
    return list(events), document.get("@context")
