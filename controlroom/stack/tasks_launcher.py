"""Runs gcloud-tasks-emulator bound to 127.0.0.1 (it binds every interface by itself).

Executed by the emulator's own virtual environment (it pins an old protobuf), so it
imports nothing from controlroom.
"""

import argparse
import logging
import signal
import sys
import time

import grpc
from gcloud_tasks_emulator.server import create_server

_original_server = grpc.server


def _loopback_server(*args, **kwargs):  # type: ignore[no-untyped-def]
    server = _original_server(*args, **kwargs)
    add_port = server.add_insecure_port

    def add_loopback_port(address):  # type: ignore[no-untyped-def]
        return add_port("127.0.0.1:" + address.rsplit(":", 1)[1])

    server.add_insecure_port = add_loopback_port
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    grpc.server = _loopback_server
    server = create_server("127.0.0.1", args.port)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    server.start()
    print(f"cloud tasks emulator on 127.0.0.1:{args.port}", flush=True)
    try:
        while not stopping:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
