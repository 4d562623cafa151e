"""Runs gcloud-tasks-emulator bound to 127.0.0.1 (it binds every interface by itself).

Executed by the emulator's own virtual environment (it pins an old protobuf), so it
imports nothing from controlroom.

The emulator keeps queues and tasks in memory; Cloud Tasks keeps a created task until it
succeeds. With `--state FILE`, a graceful stop (SIGTERM) saves what is still queued and the
next start loads it, so restarting the stand-in loses nothing, as with the real service. The
stop first refuses new tasks, then lets a dispatch in flight end (the emulator puts a failed
one back in its queue) before it saves.
"""

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

import grpc
from gcloud_tasks_emulator.server import create_server
from google.cloud.tasks_v2 import Queue, Task

_original_server = grpc.server


def _loopback_server(*args, **kwargs):  # type: ignore[no-untyped-def]
    server = _original_server(*args, **kwargs)
    add_port = server.add_insecure_port

    def add_loopback_port(address):  # type: ignore[no-untyped-def]
        return add_port("127.0.0.1:" + address.rsplit(":", 1)[1])

    server.add_insecure_port = add_loopback_port
    return server


def _save(server, path: Path) -> int:  # type: ignore[no-untyped-def]
    state = server._state
    saved = {
        name: {
            "queue": Queue.serialize(queue).hex(),
            "tasks": [Task.serialize(t).hex() for t in state._queue_tasks.get(name, [])],
        }
        for name, queue in state._queues.items()
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved))
    tmp.replace(path)
    return sum(len(q["tasks"]) for q in saved.values())


def _load(server, path: Path) -> int:  # type: ignore[no-untyped-def]
    if not path.exists():
        return 0
    state = server._state
    saved = json.loads(path.read_text())
    for name, entry in saved.items():
        state.create_queue(None, Queue.deserialize(bytes.fromhex(entry["queue"])))
        state._queue_tasks[name].extend(Task.deserialize(bytes.fromhex(t)) for t in entry["tasks"])
    path.unlink()
    return sum(len(q["tasks"]) for q in saved.values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, help="where queued tasks wait across a restart")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    grpc.server = _loopback_server
    server = create_server("127.0.0.1", args.port)
    if args.state is not None:
        print(f"restored {_load(server, args.state)} queued task(s)", flush=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    server.start()
    print(f"cloud tasks emulator on 127.0.0.1:{args.port}", flush=True)
    try:
        while not stopping:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    _quiesce(server)
    if args.state is not None:
        print(f"saved {_save(server, args.state)} queued task(s)", flush=True)
    server.stop()
    return 0


def _quiesce(server) -> None:  # type: ignore[no-untyped-def]
    """Stop taking tasks, then stop starting dispatches, then let the running ones finish:
    what is left in the queues afterwards is exactly what still has to run."""
    server._api.join(timeout=1)  # CreateTask refused from here on (the webhook answers 503)
    state = server._state
    dispatch = state.submit_task

    def no_new_dispatch(task_name, force_run=False):  # type: ignore[no-untyped-def]
        return None  # the queue threads skip the rest of their round

    state.submit_task = no_new_dispatch
    processor = server._processor
    processor._is_running.clear()
    for thread in list(processor._queue_threads.values()):
        thread.join(timeout=10)  # a dispatch in flight ends: done, or put back in its queue
    state.submit_task = dispatch


if __name__ == "__main__":
    sys.exit(main())
