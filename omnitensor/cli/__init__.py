"""`omnitensor`: the command line of OmniTensor — run the whole network locally, deploy, run a node or the
API, and use the API from a terminal."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from omnitensor.cli import client
from omnitensor.errors import OmniTensorError
from omnitensor.paths import DEFAULT_STATE_DIR

EPILOG = """examples:
  omnitensor up                                   # chain + contracts + node + API + demo account, Ctrl-C stops
  omnitensor deploy --rpc https://l2.example/rpc --keystore deployer.json
  omnitensor node --rpc https://l2.example/rpc --keystore node.json --manifest deployment.json
  omnitensor api --port 8000
  omnitensor accounts create --label "analytics team"
  omnitensor models upload model.onnx --name my-model --price-wei 20000000000000000
  omnitensor infer 1 .omnitensor/demo-input.json
  omnitensor status
Each command has its own --help."""


DELEGATED = {
    "deploy": ("omnitensor.deploy", "deploy the contracts to a chain (same as omnitensor-deploy)"),
    "node": ("oracle.cli", "run an oracle node against any chain (same as omnitensor-node)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        # Another console script: `omnitensor deploy ARGS` is `omnitensor-deploy ARGS`.
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    if argv and argv[0] == "api":
        from backend.cli import main as api_main

        return api_main(["serve", *argv[1:]])
    parser = argparse.ArgumentParser(prog="omnitensor", description="OmniTensor: a decentralized AI compute "
                                     "network.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run the whole network locally (state in .omnitensor/)",
                             description="Start anvil (state kept on disk), deploy or reuse the contracts, start an "
                             "oracle node and the API, create a demo account and model. Ctrl-C stops everything; "
                             "running it again resumes.", epilog="example: omnitensor up --api-port 8001")
    up.add_argument("--port", type=int, default=8545, help="the chain's JSON-RPC port (default 8545)")
    up.add_argument("--api-port", type=int, default=8000, help="the API's port (default 8000)")
    up.add_argument("--metrics-port", type=int, default=9464, help="the node's /metrics and /health port")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    for name, (_, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    commands.add_parser("api", help="run the HTTP API (same as omnitensor-api serve)", add_help=False)
    accounts = commands.add_parser("accounts", help="custodial accounts").add_subparsers(dest="action", required=True)
    create = accounts.add_parser("create", help="create an account; prints its API key once",
                                 epilog='example: omnitensor accounts create --label "analytics team"')
    create.add_argument("--label", default="")
    create.add_argument("--admin-token", help="default: $OMNITENSOR_API_ADMIN_TOKEN or the local network's")
    client.add_connection_flags(create)
    models = commands.add_parser("models", help="models").add_subparsers(dest="action", required=True)
    upload = models.add_parser("upload", help="upload and register a model (chunked, with progress)",
                               epilog="example: omnitensor models upload digits.onnx --price-wei 20000000000000000")
    upload.add_argument("file")
    upload.add_argument("--name")
    upload.add_argument("--format", choices=("onnx", "torchscript"), help="default: from the file's extension")
    upload.add_argument("--price-wei", type=int, default=0, help="paid to you per inference")
    client.add_connection_flags(upload)
    infer = commands.add_parser("infer", help="run a model on an input file (JSON tensors or .safetensors)",
                                epilog="example: omnitensor infer 1 .omnitensor/demo-input.json")
    infer.add_argument("model_id", type=int)
    infer.add_argument("input_file")
    infer.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the result")
    client.add_connection_flags(infer)
    status = commands.add_parser("status", help="chain, nodes, your open jobs and allocations",
                                 epilog="example: omnitensor status")
    status.add_argument("--rpc", help="the chain's RPC URL (default: the local network's)")
    client.add_connection_flags(status)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            from omnitensor.cli.localnet import up as run_up

            return run_up(args.state_dir, args.port, args.api_port, args.metrics_port)
        handler = {("accounts", "create"): client.create_account, ("models", "upload"): client.upload_model,
                   ("infer", None): client.infer, ("status", None): client.status}
        handler[(args.command, getattr(args, "action", None))](args)
        return 0
    except (OmniTensorError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
