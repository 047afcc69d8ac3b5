"""`python -m sandbox.ifs --port 0 --seed FILE`: print the base URL, serve until killed."""
from __future__ import annotations

import argparse
import asyncio
import signal

from .app import IfsEmulator
from .seed import DEFAULT_SEED


def _budget(text: str) -> tuple[int, float]:
    count, _, seconds = text.partition("/")
    return int(count), float(seconds or 60)


async def _serve(args: argparse.Namespace) -> None:
    emu = IfsEmulator(args.seed, budget=args.budget, page_size=args.page_size,
                      next_links=not args.no_next_links, token_lifetime=args.token_lifetime,
                      deep_insert=args.deep_insert)
    await emu.start("127.0.0.1", args.port)
    print(emu.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emu.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.ifs",
                                     description="Emulated IFS Cloud on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", default=str(DEFAULT_SEED), help="TOML or JSON seed file")
    parser.add_argument("--budget", type=_budget, default=(1000, 60.0),
                        help="requests/seconds, e.g. 1000/60 (default) or 100/6")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--no-next-links", action="store_true",
                        help="page without @odata.nextLink (clients advance $skip)")
    parser.add_argument("--token-lifetime", type=int, default=180, help="seconds")
    parser.add_argument("--deep-insert", action="store_true",
                        help="take a header's children inline in its create (standard OData "
                             "deep insert; refused by default)")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
