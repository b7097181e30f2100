"""`tide node start DIR`: open the store, build the node, serve the API, run consensus."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
from pathlib import Path

from aiohttp import web

from tidechain.api.server import Api
from tidechain.node.config import ConfigError, load_genesis, load_node
from tidechain.node.mempool import Mempool
from tidechain.node.node import Node
from tidechain.node.peers import PeerNetwork
from tidechain.node.runtime import NodeRuntime
from tidechain.node.tls import client_context, server_context
from tidechain.storage.store import Store

log = logging.getLogger("tidechain.node")


async def serve(node_dir: Path, *, port: int | None = None) -> None:
    config = load_node(node_dir)
    genesis = load_genesis(config.network_dir)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"port {port} is not in 1..65535")
    store = Store(config.data_path)
    runner: web.AppRunner | None = None
    network: PeerNetwork | None = None
    try:
        node = Node(genesis, store, config.signer(),
                    mempool=Mempool(config.mempool_max_txs))
        _tune_gc()
        runtime = NodeRuntime(node)
        if config.peers:
            tls = config.tls_files
            network = PeerNetwork(
                config.name, config.peer_host, config.peer_port, config.peer_addresses(),
                server_context(tls), client_context(tls), runtime.on_peer_message,
                rng=random.Random(os.urandom(16)))
            runtime.network = network
            await network.start()
        runner = web.AppRunner(Api(runtime).app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, config.api_host, port or config.api_port)
        await site.start()
        log.info("node %s of %s at height %d, log size %d; API on http://%s:%d",
                 config.name, genesis.name, node.chain.height, node.chain.frontier.size,
                 config.api_host, port or config.api_port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop)
        await runtime.run()
    finally:
        if network is not None:
            await network.stop()
        if runner is not None:
            await runner.cleanup()
        store.close()
    log.info("node %s stopped cleanly", config.name)


GC_YOUNG_THRESHOLD = 20_000
"""Allocations between young-generation collections (CPython's default is 700). A node
allocates and frees many short-lived objects per transaction, few of them in cycles;
collecting every 700 allocations cost ~8% of a sync's CPU (measured with
benchmarks/bench_catchup.py)."""


def _tune_gc() -> None:
    # What the node loaded at start (the state tree, the log frontier) lives until
    # the process ends: freezing it keeps every later full collection from walking it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run_node(node_dir: Path, *, port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(node_dir, port=port))
