"""The cost of the declared API on the submit path (ADR 0014): parsing `POST /v1/tx`'s
query parameters into their Struct and converting the answer through its model, against
the hand-written parsing and `json.dumps` it replaced, in one run on one machine.

    .venv/bin/python benchmarks/bench_api_models.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

import msgspec

from tidechain.api import models
from tidechain.api.routes import SubmitParams
from tidechain.api.server import _convert

RAW = {"wait": "true", "timeout_ms": "30000", "receipt": "true"}
ANSWER = {"tx_id": "ab" * 32, "status": "committed", "log_index": 123456, "height": 789,
          "events": [{"type": "deposited", "data": {"index": 123456, "digest": "cd" * 32}}],
          "receipt": "c2sp.org/tlog-proof@v1\nindex 123456\n" + "A" * 900}
_DECIMAL = re.compile(r"[0-9]{1,19}")


def declared() -> bytes:
    params = _convert(RAW, SubmitParams)
    assert params.wait
    return msgspec.json.encode(msgspec.convert(ANSWER, models.Committed))


def hand_written() -> bytes:
    wait = RAW.get("wait", "false") in ("1", "true")
    raw = RAW["timeout_ms"]
    assert wait and _DECIMAL.fullmatch(raw) and int(raw) <= 60_000
    return json.dumps(ANSWER).encode()


def per_call_us(fn: Callable[[], bytes], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    for _ in range(2):  # the second pass is the one reported (warm caches)
        ours, theirs = per_call_us(declared, args.rounds), per_call_us(hand_written, args.rounds)
    print(f"declared (msgspec params + answer model): {ours:.2f} us per submit answer")
    print(f"hand-written (regex + json.dumps):         {theirs:.2f} us per submit answer")
    print(f"ratio declared / hand-written: {ours / theirs:.2f}")
    print(f"reproduce: .venv/bin/python benchmarks/bench_api_models.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
