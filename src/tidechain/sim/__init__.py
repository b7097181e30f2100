"""Seeded deterministic simulator of the consensus (docs/simulator.md).

`World(seed, validators, byzantine).run()` runs one seed and returns a `SimResult`;
`python -m tidechain.sim` runs campaigns and replays seeds. All randomness comes from
one `random.Random(seed)`, so a seed replays exactly.
"""
