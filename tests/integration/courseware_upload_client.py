"""An uploading client for tests/integration/test_courseware_upload_large.py, run as a process of its own
so that the test can kill it mid-part (a cut connection): it speaks the app's upload protocol and PUTs
parts straight to the object store, generating the file on the fly from a seed (part i, chunk j is
`Random(seed, i, j)`), so neither it nor anyone holds the file in memory.

    python courseware_upload_client.py BASE_URL COOKIE CSRF UPLOAD_ID SEED [--concurrency N] [--complete]

Prints one JSON line per event: {"stored": [n, ...]} (the parts the store lists when it starts),
{"started": n}, {"sending": n, "bytes": k} (after its first chunk), {"done": n, "etag": ...},
{"completed": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
from collections.abc import AsyncIterator

import aiohttp

CHUNK = 1024 * 1024


def chunk(seed: int, part: int, index: int, size: int) -> bytes:
    return random.Random(f"{seed}/{part}/{index}").randbytes(size)


def part_md5(seed: int, part: int, size: int) -> str:
    """The MD5 of part `part` (what S3 answers as its ETag), generated again chunk by chunk."""
    digest = hashlib.md5()
    for index, start in enumerate(range(0, size, CHUNK)):
        digest.update(chunk(seed, part, index, min(CHUNK, size - start)))
    return digest.hexdigest()


def say(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def body(seed: int, part: int, size: int) -> AsyncIterator[bytes]:
    sent = 0
    for index, start in enumerate(range(0, size, CHUNK)):
        data = chunk(seed, part, index, min(CHUNK, size - start))
        yield data
        sent += len(data)
        if index == 0:
            say({"sending": part, "bytes": sent})


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("base", "cookie", "csrf"):
        parser.add_argument(name)
    parser.add_argument("upload_id", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--complete", action="store_true")
    args = parser.parse_args()
    headers = {"Cookie": args.cookie, "X-CSRF-Token": args.csrf}
    api = f"{args.base}/api/courseware/uploads/{args.upload_id}"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(api, headers=headers) as resp:
            upload = await resp.json()
        size, part_size, count = upload["size_bytes"], upload["part_size"], upload["part_count"]
        etags = {p["number"]: p["etag"] for p in upload["parts"]}
        say({"stored": sorted(etags)})
        todo = [n for n in range(1, count + 1) if n not in etags]

        async def worker() -> None:
            while todo:
                n = todo.pop(0)
                length = min(part_size, size - (n - 1) * part_size)
                async with http.post(f"{api}/parts", json={"numbers": [n]}, headers=headers) as resp:
                    [part] = (await resp.json())["parts"]
                say({"started": n})
                async with http.put(
                    part["url"], data=body(args.seed, n, length), headers={"Content-Length": str(length)}
                ) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"part {n}: {resp.status} {await resp.text()}")
                    etags[n] = resp.headers["ETag"].strip('"')
                say({"done": n, "etag": etags[n]})

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        if args.complete:
            parts = [{"number": n, "etag": etags[n]} for n in sorted(etags)]
            async with http.post(f"{api}/complete", json={"parts": parts}, headers=headers) as resp:
                say({"completed": await resp.json(), "status": resp.status})


if __name__ == "__main__":
    asyncio.run(main())
