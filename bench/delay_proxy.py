"""A TCP proxy that adds a fixed one-way delay to each direction, like a mail relay across the internet.

Run: .venv/bin/python bench/delay_proxy.py --listen 127.0.0.1:PORT --to 127.0.0.1:UPSTREAM --rtt-ms 20

Every chunk read from one side is written to the other ``rtt/2`` later, in
order, whatever else is in flight (a fixed propagation delay; no bandwidth
limit, so many bytes can be "on the wire" at once, as on a real path).  With
a 20 ms round trip, a client that waits for each reply before its next command
pays 20 ms a wait; one that pipelines pays it once per batch.  asyncio, one
pair of tasks per direction of each connection; binds loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it arrived."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


async def serve(listen: tuple[str, int], upstream: tuple[str, int], rtt: float, ready: asyncio.Event | None = None) -> None:
    """Accept on ``listen`` and relay each connection to ``upstream`` with ``rtt``/2 each way."""

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, rtt / 2), _pump(server_reader, client_writer, rtt / 2),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, *listen)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT to accept on (loopback)")
    parser.add_argument("--to", type=_address, required=True, help="HOST:PORT of the server behind the proxy")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip added, half each way (default 20)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.listen, args.to, args.rtt_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
