"""Child process of the event-bus kill test: one consumer that reads a batch through its group,
acknowledges every other event, reports on stdout, then waits to be killed mid-batch."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from infra.bus_redis import RedisBus


async def run(args: argparse.Namespace) -> None:
    bus = RedisBus(args.url, retention=args.retention, key_prefix=args.key_prefix)
    batch = await bus.consume(args.topic, args.group, args.consumer, count=args.count, block_s=10.0)
    acked = [d.id for position, d in enumerate(batch) if position % 2 == 0]
    await bus.ack(args.topic, args.group, acked)
    # One line, flushed: the parent waits for it before killing this process.
    sys.stdout.write(json.dumps({"delivered": [d.id for d in batch], "acked": acked}) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()  # never set: the rest of the batch stays unacknowledged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key-prefix", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--retention", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
