"""Fuzz Studio's metadata readers (`studio.interop.read`) with mutated files.

    nice .venv/bin/python bench/fuzz_metadata.py [--count 1000000] [--workers 2] [--seed 1]

Inputs are the third-party collection of `tests/support/foreign_images.py` (PNG, JPEG and
WebP as other generators write them) with their metadata mutated (`metadata_fuzz`): bit
flips, truncation, huge lengths, random JSON, poked graphs, zip bombs. Every read runs in
memory, in worker processes; each mutation is a function of (seed, index), so a finding
can be made again with `--replay INDEX`.

A crash is any exception but `MetadataError` (a file refused with its reason is the reader
working). Per read: CPU time (`time.process_time`); memory: the workers' peak resident
size against their size before the first read (covers Pillow's C allocations), and the
Python allocations' peak (`tracemalloc`) on every `--trace-every`-th read. Targets: 0
crashes, no read over 100 ms of CPU or 100 MB. Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import random
import resource
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.foreign_images import collection  # noqa: E402
from support.metadata_fuzz import mutate  # noqa: E402

from studio.interop import MetadataError, read  # noqa: E402

CPU_LIMIT_S = 0.100
MEMORY_LIMIT_MB = 100.0
CHUNK = 2_000  # reads per task


@dataclass
class Figures:
    reads: int = 0
    refused: int = 0  # MetadataError: a damaged file, said so
    crashes: list[str] = field(default_factory=list)  # "index: error"
    slow: list[tuple[float, int]] = field(default_factory=list)  # (cpu s, index) over limit
    worst_cpu: tuple[float, int] = (0.0, -1)
    traced_peak: tuple[float, int] = (0.0, -1)  # MB, index
    rss_growth_mb: float = 0.0

    def add(self, other: Figures) -> None:
        self.reads += other.reads
        self.refused += other.refused
        self.crashes += other.crashes
        self.slow += other.slow
        self.worst_cpu = max(self.worst_cpu, other.worst_cpu)
        self.traced_peak = max(self.traced_peak, other.traced_peak)
        self.rss_growth_mb = max(self.rss_growth_mb, other.rss_growth_mb)


_SEEDS: list[bytes] = []
_RSS_START = 0.0


def _start_worker() -> None:
    global _RSS_START
    warnings.simplefilter("ignore")  # Pillow warns of corrupt EXIF: expected here
    _SEEDS.extend(image.data for image in collection() if image.fuzz)
    for data in _SEEDS:  # warm every code path before the baseline
        read(io.BytesIO(data))
    _RSS_START = _rss_mb()


def case(seed: int, index: int) -> bytes:
    rng = random.Random(seed * 1_000_003 + index)
    return mutate(rng.choice(_SEEDS), rng)


def run_chunk(task: tuple[int, int, int, int]) -> Figures:
    seed, start, stop, trace_every = task
    figures = Figures()
    for index in range(start, stop):
        data = case(seed, index)
        traced = trace_every > 0 and index % trace_every == 0
        if traced:
            tracemalloc.start()
        began = time.process_time()
        try:
            read(io.BytesIO(data))
        except MetadataError:
            figures.refused += 1
        except Exception as error:  # the finding this bench is for
            figures.crashes.append(f"{index}: {error!r}"[:300])
        cpu = time.process_time() - began
        if traced:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            figures.traced_peak = max(figures.traced_peak, (peak, index))
        figures.reads += 1
        figures.worst_cpu = max(figures.worst_cpu, (cpu, index))
        if cpu > CPU_LIMIT_S:
            figures.slow.append((cpu, index))
    figures.rss_growth_mb = _rss_mb() - _RSS_START
    return figures


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace-every", type=int, default=97, help="0: no tracemalloc")
    parser.add_argument("--replay", type=int, help="write mutated input INDEX to --out")
    parser.add_argument("--out", type=Path, default=Path("fuzz-case.bin"))
    args = parser.parse_args()
    if args.replay is not None:
        _start_worker()
        args.out.write_bytes(case(args.seed, args.replay))
        print(f"wrote input {args.replay} to {args.out}")
        return
    tasks = [
        (args.seed, start, min(start + CHUNK, args.count), args.trace_every)
        for start in range(0, args.count, CHUNK)
    ]
    total = Figures()
    began = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_start_worker) as pool:
        for done, figures in enumerate(pool.imap_unordered(run_chunk, tasks), 1):
            total.add(figures)
            if done % 50 == 0 or done == len(tasks):
                print(
                    f"  {total.reads:,} reads, {len(total.crashes)} crashes, worst "
                    f"{total.worst_cpu[0] * 1000:.1f} ms CPU, {time.perf_counter() - began:.0f} s",
                    flush=True,
                )
    _report(total, args, time.perf_counter() - began)


def _report(total: Figures, args: argparse.Namespace, wall: float) -> None:
    print(
        f"\nfuzzed reads: {total.reads:,} (seed {args.seed}, {args.workers} workers, {wall:.0f} s)"
    )
    print(f"  refused as damaged (MetadataError): {total.refused:,}")
    print(f"  crashes: {len(total.crashes)}  (target 0)")
    for line in total.crashes[:20]:
        print(f"    {line}")
    cpu, index = total.worst_cpu
    print(f"  worst CPU time of one read: {cpu * 1000:.1f} ms (input {index}; target ≤ 100 ms)")
    print(f"  reads over 100 ms of CPU: {len(total.slow)}")
    for cpu, index in sorted(total.slow, reverse=True)[:10]:
        print(f"    input {index}: {cpu * 1000:.1f} ms")
    peak, index = total.traced_peak
    sampled = f"1 read in {args.trace_every}"
    print(f"  Python allocations, peak of one read ({sampled}): {peak:.1f} MB (input {index})")
    growth = total.rss_growth_mb
    print(f"  worker peak resident size over its start: {growth:.1f} MB (target ≤ 100 MB)")


if __name__ == "__main__":
    main()
