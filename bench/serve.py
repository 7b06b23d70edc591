"""``python -m bench.serve``: the local gateway in a process of its own, for the load run.

The load run's clients then share no interpreter lock with the functions they call. The gateway serves
the bench's tables (``--prefix``) on a running DynamoDB Local (``--ddb-endpoint``) at ``--port``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--ddb-endpoint", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from local.dynamodb import die_with_parent
    from local.gateway import Gateway
    from local.server import GatewayServer
    from local.template import load_template

    die_with_parent()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    gateway = Gateway(
        load_template(), port=args.port, dynamodb_endpoint=args.ddb_endpoint, table_prefix=args.prefix
    )
    server = GatewayServer(gateway, port=args.port)
    gateway.activate()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
