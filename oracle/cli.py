"""`omnitensor-node`: runs an oracle node against any chain with an OmniTensor deployment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from omnitensor.errors import OmniTensorError
from oracle.node import OracleNode
from oracle.settings import NodeSettings

EPILOG = """examples:
  local chain (scripts/up.sh running), a development key:
    OMNITENSOR_NODE_PRIVATE_KEY=0x... omnitensor-node
  an L2, an encrypted keystore:
    OMNITENSOR_NODE_KEYSTORE_PASSWORD=... omnitensor-node --rpc https://l2.example/rpc \\
        --keystore node.json --manifest deployment.json --confirmations 3

Every setting can also come from OMNITENSOR_NODE_<NAME> (e.g. OMNITENSOR_NODE_DEVICE=cpu)."""


def parse_settings(argv: list[str] | None) -> NodeSettings:
    parser = argparse.ArgumentParser(prog="omnitensor-node", description="Run an OmniTensor oracle node.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpc", dest="rpc_url", help="JSON-RPC URL of the chain")
    parser.add_argument("--keystore", help="encrypted node key (Web3 Secret Storage)")
    parser.add_argument("--manifest", help="deployment manifest written by omnitensor-deploy")
    parser.add_argument("--confirmations", type=int, help="blocks behind head (0 on a local chain)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), help="where the engines run")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics and /health port; 0: off")
    parser.add_argument("--state-db", help="the node's SQLite file")
    parser.add_argument("--blob-dir", help="content-addressed blob folder")
    parser.add_argument("--max-batch", type=int, help="jobs per batch")
    parser.add_argument("--max-workers", type=int, help="engine worker processes (one per model in use)")
    parser.add_argument("--batch-timeout", dest="batch_timeout_s", type=float,
                        help="seconds one engine batch may run before its worker is killed")
    parser.add_argument("--worker-memory", dest="worker_memory_bytes", type=int,
                        help="bytes an engine worker may grow by before it is killed")
    parser.add_argument("--fetch-allow-file", action="store_true", default=None,
                        help="accept file:// model and input URIs (paths on this host; local networks only)")
    parser.add_argument("--fetch-allow-private", action="store_true", default=None,
                        help="fetch from loopback, private and link-local addresses (local networks only)")
    parser.add_argument("--public-url", help="URL at which others reach this node's metrics port; large "
                        "outputs are named <public-url>/blobs/<sha256>")
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return NodeSettings(**args)


async def serve(node: OracleNode) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.stop)
    await node.start_health()
    try:
        await node.run_forever()
    finally:
        await node.cleanup()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = parse_settings(argv)
        node = OracleNode(settings)
        node.setup()
    except OmniTensorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
