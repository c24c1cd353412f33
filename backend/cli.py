"""`omnitensor-api`: serve the API, or create a custodial account from the terminal."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from backend.settings import ApiSettings
from omnitensor.errors import OmniTensorError

EXAMPLES = """examples:
  OMNITENSOR_API_SECRET=$(openssl rand -hex 32) OMNITENSOR_API_RELAYER_KEYSTORE=relayer.json \\
      omnitensor-api serve --port 8000
  omnitensor-api accounts create --label "analytics team"
Settings come from OMNITENSOR_API_* environment variables (see README, "HTTP API")."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnitensor-api", description="OmniTensor's HTTP API.", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    accounts = commands.add_parser("accounts", help="manage custodial accounts")
    accounts_cmd = accounts.add_subparsers(dest="action", required=True)
    create = accounts_cmd.add_parser("create", help="create an account; prints its id, address and API key once")
    create.add_argument("--label", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ApiSettings()
        if args.command == "serve":
            import uvicorn

            from backend.app import create_app

            uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
            return 0
        from backend.services import Services

        svc = Services.build(settings)
        account, api_key = svc.credentials.create_custodial(args.label)
        print(json.dumps({"account_id": account.id, "address": account.address, "api_key": api_key}, indent=2))
        return 0
    except OmniTensorError as exc:
        print(f"omnitensor-api: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
