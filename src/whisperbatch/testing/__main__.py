"""`python -m whisperbatch.testing`: the test server as a process of its own, for benchmarks that must
not share the measured process with it. Prints `READY <base_url>` and serves until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import FakeOpenAI


def main(argv: list[str] | None = None) -> int:
    """Standalone mode for benchmarks: prints `READY <base_url>` and serves until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m whisperbatch.testing", description="A fake of the OpenAI API on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--instant", action="store_true", help="do not decode; answer one canned segment")
    mode.add_argument("--model", help="transcribe for real: tiny.en, base or a CTranslate2 model folder")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--s-per-audio-min", type=float, default=0.0, help="answer delay per audio minute")
    parser.add_argument("--max-body-bytes", type=int, default=26_214_400)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with FakeOpenAI(
        port=args.port,
        asr=not args.instant,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        model=args.model,
        s_per_audio_min=args.s_per_audio_min,
    ) as server:
        print(f"READY {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
        print(f"served {server.count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
