"""Streaming benchmarks, each in a child process: ``python -m bench.stream WAY ...``.

- ``first-poll URL DIR N``: poller and consumer at once (two processes, as ``stream run``
  would be deployed) until N events are committed; wall time end to end.
- ``publish DIR N SYNC``: N single-message publishes, each durable before the next.
- ``fsync-floor DIR N``: N one-page writes, each followed by fdatasync: what the disk
  allows one durable commit at a time, for comparison.
- ``latency URL DIR SECONDS``: the live server, a 1-second poll and the consumer for
  SECONDS; latency from bus publish to committed warehouse row, per event.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import peak_rss_mb


def _settings(url: str, data: Path) -> Any:
    from ey_platform.runtime import tune_allocator
    from ey_platform.settings import load_settings

    tune_allocator()  # the processes as `ey-platform stream poll|consume` run them
    return load_settings(api_url=url, data_dir=data)  # the parts as deployed


def first_poll(url: str, data: Path, n: int) -> dict[str, Any]:
    from ey_platform.wiring import consumer_parts

    with consumer_parts(_settings(url, data)) as parts:
        return _first_poll(url, data, n, parts.consumer)


def _first_poll(url: str, data: Path, n: int, consumer: Any) -> dict[str, Any]:
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "bench.stream", "poll-only", url, str(data)])
    loaded = 0
    while loaded < n:  # as `stream run` consumes: drained, idle a moment, again
        result = consumer.run(drain=True)
        loaded += result.loaded
        if not result.pulled:
            time.sleep(0.05)
    seconds = time.perf_counter() - start
    child.wait()
    return {"events": loaded, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def poll_only(url: str, data: Path) -> None:
    from ey_platform.wiring import stream_parts

    with stream_parts(_settings(url, data)) as parts:
        parts.poller.poll_once()


def steady_poll(url: str, data: Path, rounds: int = 3) -> dict[str, Any]:
    """After a first poll, polls in which 1% of the carts changed: with the poller's
    memory kept between polls, and with it dropped before each poll (the state read
    from its file every poll, as before issue 19), alternated. A change is made on the
    poller's side (its digest of every 100th cart is altered), as the public API cannot
    be written: the poll then fetches, hashes and compares every cart and publishes
    1% of them as updates, as it would for carts changed at the source."""
    from ey_platform.wiring import stream_parts

    with stream_parts(_settings(url, data)) as parts:
        poller, state = parts.poller, parts.poller.state
        poller.poll_once()
        known = state.load()
        timings: dict[str, list[float]] = {"memory": [], "reload": []}
        published = 0
        for round_ in range(rounds):
            for way in timings:
                changed = [(cid, f"changed-{round_}-{way}", k.version) for cid, k in known.items()]
                state.save(changed[::100])
                if way == "reload":
                    state._memory = None  # the file is read, as before
                start = time.perf_counter()
                result = poller.poll_once()
                timings[way].append(time.perf_counter() - start)
                published = result.updated
                known = state.load()
    return {
        "carts": len(known),
        "updated": published,
        "memory": timings["memory"],
        "reload": timings["reload"],
        "peak_rss_mb": peak_rss_mb(),
    }


def publish(data: Path, n: int, sync: str) -> dict[str, Any]:
    from ey_platform.bus.base import Message
    from ey_platform.bus.sqlite import SQLiteBus

    bus = SQLiteBus(data / f"bus-{sync}.sqlite3", sync=sync)  # type: ignore[arg-type]
    bus.setup()
    payload = b'{"event_id":"0123456789abcdef0123456789abcdef","cart":{"id":1}}'
    start = time.perf_counter()
    for i in range(n):
        bus.publish([Message(payload, {"event_id": str(i)}, str(i % 100))])
    seconds = time.perf_counter() - start
    return {"messages": n, "seconds": seconds}


def fsync_floor(data: Path, n: int) -> dict[str, Any]:
    """The device's own rate: ``n`` times, write one 4 KiB page in place and fdatasync it
    (what one durable SQLite commit needs at the least, in the same directory)."""
    import os

    path = data / "fsync-floor.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        page = b"\0" * 4096
        os.write(fd, page * 16)
        os.fsync(fd)
        start = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, page, 4096 * (i % 16))
            os.fdatasync(fd)
        seconds = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return {"messages": n, "seconds": seconds}


def latency(url: str, data: Path, seconds: float) -> dict[str, Any]:
    import threading

    from ey_platform.pipelines.control import Stopper, run_both
    from ey_platform.wiring import stream_parts

    with stream_parts(_settings(url, data)) as parts:
        stopper = Stopper()
        threading.Timer(seconds, stopper.stop).start()
        run_both(parts.poller, parts.consumer, 1.0, stopper)
        warehouse = parts.warehouse
    ((p50, p99, worst, count),) = warehouse.query(
        """SELECT quantile_cont(ms, 0.5), quantile_cont(ms, 0.99), max(ms), count(*) FROM (
             SELECT epoch_ms(_loaded_at) - epoch_ms(_bus_publish_time) AS ms
             FROM bq_raw.carts_events WHERE cart_version > 1 OR _loaded_at > (
                SELECT min(_loaded_at) + INTERVAL 2 SECOND FROM bq_raw.carts_events))"""
    )
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": worst, "events": count}


if __name__ == "__main__":
    way, *args = sys.argv[1:]
    if way == "poll-only":
        poll_only(args[0], Path(args[1]))
        sys.exit(0)
    out = {
        "first-poll": lambda: first_poll(args[0], Path(args[1]), int(args[2])),
        "publish": lambda: publish(Path(args[0]), int(args[1]), args[2]),
        "fsync-floor": lambda: fsync_floor(Path(args[0]), int(args[1])),
        "latency": lambda: latency(args[0], Path(args[1]), float(args[2])),
        "steady-poll": lambda: steady_poll(args[0], Path(args[1])),
    }[way]()
    print(json.dumps(out))
