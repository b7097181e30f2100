"""Seeded deterministic simulator of the shipped node core (docs/simulator.md).

`NodeWorld(seed).run()` (sim/nodes.py) runs n copies of `node.core.NodeCore` on
in-memory stores for one seed and returns a `NodeResult`; `python -m tidechain.sim`
runs campaigns and replays seeds. All randomness comes from one `random.Random(seed)`,
so a seed replays exactly.
"""
