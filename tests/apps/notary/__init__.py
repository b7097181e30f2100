"""Notary: a test-only application, to show that an application is one folder and one
registry line (ADR 0013). A member notes a short text under a tag; anyone with a
reader's role (a depositor or an admin, and the regulator: ADR 0015) lists the notes of
a tag, newest first, or reads one note by its log index, and reads the notes' log
entries (`Application.readers`); anonymous callers read none of it.

State in the `notary` namespace:

* `n` + index (8 bytes) -> the note record (CBOR map, see `note`)

Secondary index (from the `noted` events, by `index_rule`; not in the state root):

* `notary/tag`  tag (UTF-8) -> the log indexes of its notes

Registered by a test only: `default_registry(extra=[notary.APP])`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import quote

import msgspec

from tidechain.core import cbor
from tidechain.core.errors import ContractError, NotFound, invariant
from tidechain.identity.roles import Role
from tidechain.ledger.application import (
    Application,
    ChainView,
    Page,
    PageRequest,
    Query,
    newest_first,
)
from tidechain.ledger.runtime import CallContext, Contract, MethodSpec, check_args, namespaced
from tidechain.ledger.types import Event

NAME = "notary"
TAG_INDEX = "tag"
MAX_TEXT_BYTES = 512
"""A note is a sentence, not a document: documents are deposited as digests."""
MAX_TAG_BYTES = 64
"""A tag is an index key: bounded by MAX_INDEX_KEY_BYTES (core/limits.py)."""


def note_key(index: int) -> bytes:
    return b"n" + index.to_bytes(8, "big")


# --- the rules -----------------------------------------------------------------------------


def check_text(text: Any) -> str:
    if not isinstance(text, str) or not text or len(text.encode()) > MAX_TEXT_BYTES:
        raise ContractError(f"'text' must be 1..{MAX_TEXT_BYTES} bytes of text",
                            code="bad_argument")
    return text


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag.encode()) > MAX_TAG_BYTES:
        raise ContractError(f"'tag' must be 1..{MAX_TAG_BYTES} bytes of text",
                            code="bad_argument")
    return tag


def note(ctx: CallContext, args: dict[str, Any]) -> None:
    """Note `text` under `tag`. The note's identifier is its log index."""
    check_args(args, {"text", "tag"})
    text, tag = check_text(args.get("text")), check_tag(args.get("tag"))
    ctx.put(note_key(ctx.log_index), cbor.encode({
        "index": ctx.log_index, "text": text, "tag": tag, "notary": ctx.caller,
        "height": ctx.height, "time": ctx.time_ms, "tx": ctx.tx_id}))
    ctx.emit("noted", {"index": ctx.log_index, "tag": tag})


def index_rule(events: Sequence[Event]) -> list[tuple[str, bytes]]:
    """A note is filed under its tag (run at execution and by a state sync)."""
    rows = []
    for event in events:
        if event.kind == "noted":
            tag = event.data.get("tag")
            invariant(isinstance(tag, str), "noted event without a tag")
            assert isinstance(tag, str)
            rows.append((TAG_INDEX, tag.encode()))
    return rows


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_BYTES,
                                   description="what is noted")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TAG_BYTES,
                                  description="what the note is filed under")]


class NoteArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: Text
    tag: Tag


CONTRACT = Contract(
    name=NAME,
    methods={"note": MethodSpec(note, frozenset({Role.DEPOSITOR}),
                                "note a text under a tag {text, tag}", NoteArgs)},
    description="Notary (test application): short texts filed under tags.",
)


# --- the queries ---------------------------------------------------------------------------


class Note(msgspec.Struct, frozen=True):
    index: int
    text: str
    tag: str
    notary: str
    height: int
    time: int
    tx: str


class NoteParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    index: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a log index")]


class NotesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tag: Tag


def _note(view: ChainView, index: int) -> Note | None:
    raw = view.state.get(namespaced(NAME, note_key(index)))
    if raw is None:
        return None
    record = cbor.decode(raw)
    invariant(isinstance(record, dict), "corrupt notary record in state")
    assert isinstance(record, dict)
    return Note(index=record["index"], text=record["text"], tag=record["tag"],
                notary=record["notary"].hex(), height=record["height"],
                time=record["time"], tx=record["tx"].hex())


def get_note(view: ChainView, params: NoteParams) -> Note:
    found = _note(view, params.index)
    if found is None:
        raise NotFound(f"no note at log index {params.index}")
    return found


def notes(view: ChainView, params: NotesParams, page: PageRequest) -> Page[Note]:
    """The notes of one tag, newest first."""
    return newest_first(view, f"{NAME}/{TAG_INDEX}", params.tag.encode(), page,
                        lambda i: _note(view, i))


READERS = frozenset({Role.DEPOSITOR, Role.ADMIN})
"""Who reads every note, by query and as log entries (the regulator always does)."""

QUERIES = {
    "note": Query(get_note, "one note by its log index", Note, NoteParams, roles=READERS),
    "notes": Query(notes, "the notes of a tag, newest first", Note, NotesParams,
                   roles=READERS, paged=True),
}


def describe_entry(method: str, args: Mapping[str, Any], events: Sequence[Event]) -> list[str]:
    """What a note's entry proves, for `tide verify`."""
    return [f"tag: {args.get('tag')}", f"text: {args.get('text')}"]


def find(view: ChainView, text: str) -> list[tuple[str, str, str]]:
    """A tag that has notes, for the API's search."""
    key = text.encode()
    if not 0 < len(key) <= MAX_TAG_BYTES or not view.index_page(
            f"{NAME}/{TAG_INDEX}", key, None, 1):
        return []
    return [("record", text, f"/v1/apps/{NAME}/notes?tag={quote(text, safe='')}")]


APP = Application(
    name=NAME,
    summary=CONTRACT.description,
    contracts=(CONTRACT,),
    queries=QUERIES,
    index_rule=index_rule,
    describe_entry=describe_entry,
    find=find,
    readers=READERS,
)
