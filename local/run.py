"""``make run``: DynamoDB Local with data kept under .local/, the tables of template.yaml, and the API
served at http://127.0.0.1:$PORT/api/fhir in the foreground until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from local import LOCAL_DIR, TEMPLATE_PATH, LocalError
from local.dynamodb import DynamoDBLocal, die_with_parent, jar_path, port_is_free


def _port(value: str, variable: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise LocalError(f"{variable}={value!r} is not a port number; set {variable}=<1024-65535>") from None
    if not 0 < port < 65536:
        raise LocalError(f"{variable}={port} is out of range; set {variable}=<1024-65535>")
    return port


def check_ports(port: int, ddb_port: int) -> None:
    """LocalError naming the port and the fix when a port is taken."""
    if port == ddb_port:
        raise LocalError(f"PORT and DDB_PORT are both {port}; give them different values")
    if not port_is_free(port):
        raise LocalError(
            f"port {port} (PORT) is in use; stop what uses it or run make run PORT=<another port>"
        )
    if not port_is_free(ddb_port):
        raise LocalError(
            f"port {ddb_port} (DDB_PORT) is in use; stop what uses it or run make run DDB_PORT=<another port>"
        )


def serve(port: int, ddb_port: int) -> None:
    """Start everything, serve until a stop signal, then stop everything started."""
    if not jar_path().is_file():
        raise LocalError(f"DynamoDB Local is not installed ({jar_path()} missing); run make install")
    check_ports(port, ddb_port)
    from local.template import load_template

    template = load_template(TEMPLATE_PATH)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from local import tables
    from local.gateway import Gateway
    from local.server import GatewayServer

    tables.table_resources(template)  # a template without the tables fails before anything starts
    with DynamoDBLocal(ddb_port, db_path=LOCAL_DIR / f"data-{ddb_port}") as dynamodb:
        tables.create_tables(dynamodb.client(), template)
        gateway = Gateway(template, port=port, dynamodb_endpoint=dynamodb.endpoint)
        try:
            server = GatewayServer(gateway, port=port)
        except OSError as error:
            raise LocalError(
                f"cannot listen on port {port} ({error.strerror}); run make run PORT=<another port>"
            ) from None
        thread = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
        thread.start()
        from local.stack import start_notifications

        notifications = start_notifications(gateway, dynamodb.endpoint)
        logging.getLogger("local.run").info(
            "serving http://127.0.0.1:%d/api/fhir (DynamoDB Local on %d, data in .local/data-%d)",
            port,
            ddb_port,
            ddb_port,
        )
        try:
            while not stop.wait(0.5):
                if dynamodb.process is None or dynamodb.process.poll() is not None:
                    raise LocalError(f"DynamoDB Local on port {ddb_port} stopped; run make run again")
        finally:
            notifications.stop()
            server.shutdown()
            server.server_close()
            gateway.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make run``; a one-line error and exit 1 on any tooling problem."""
    parser = argparse.ArgumentParser(prog="python -m local.run")
    parser.add_argument("--port", default=os.environ.get("PORT", "3000"))
    parser.add_argument("--ddb-port", default=os.environ.get("DDB_PORT", "8000"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Under make, a SIGTERM to make must still stop this process (and so the JVM).
    die_with_parent()
    try:
        serve(_port(str(args.port), "PORT"), _port(str(args.ddb_port), "DDB_PORT"))
    except LocalError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
