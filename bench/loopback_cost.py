"""What one message between two processes costs on this machine (docs/performance.md).

    .venv/bin/python -m bench.loopback_cost [--sends 20000] [--size 200]

A sender writes `--sends` messages of `--size` bytes to a reader in another process over
loopback TCP, twice: back to back (the reader stays awake) and paced 0.5 ms apart (each send
wakes the reader, as a request to the broker or an update to a service does). Prints the CPU
time per message of each side, from `getrusage`, as JSON. Each side's total is the kernel's
exact run time; the sender's split between user and system time is sampled at the timer's
ticks, so it is only meaningful over many sends (the default).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import time


def measure(sends: int, size: int, paced: bool) -> dict[str, float]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    child = os.fork()
    if child == 0:  # the reader: until the sender closes
        conn, _ = server.accept()
        while conn.recv(65536):
            pass
        os._exit(0)
    server.close()
    sender = socket.create_connection(("127.0.0.1", port))
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * size
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(sends):
        sender.sendall(message)
        if paced:
            time.sleep(0.0005)
    after = resource.getrusage(resource.RUSAGE_SELF)
    sender.close()
    _, _, reader = os.wait4(child, 0)
    per = 1e6 / sends
    return {
        "sender_user_us": round((after.ru_utime - before.ru_utime) * per, 1),
        "sender_system_us": round((after.ru_stime - before.ru_stime) * per, 1),
        "reader_us": round((reader.ru_utime + reader.ru_stime) * per, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    result = {
        "back_to_back": measure(args.sends, args.size, paced=False),
        "paced": measure(args.sends, args.size, paced=True),
    }
    print(json.dumps({"sends": args.sends, "size": args.size, **result}, indent=1))


if __name__ == "__main__":
    main()
