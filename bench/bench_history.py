"""Benchmark the history store at gallery scale: inserts, saves, search, listing, reconcile.

    .venv/bin/python bench/bench_history.py [--rows 100000] [--saves 200]

Prints figures beside their targets; never asserts on time. Prompts are generated
from word lists with a fixed seed, so runs are comparable.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from studio.core.history import HistoryStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest

SEED = 20240501
JOB_SIZE = 4
YEARS = 2.0  # the rows' times are spread over this much past
# fmt: off
SUBJECTS = (
    "astronaut", "fox", "owl", "lighthouse", "castle", "dragon", "robot", "samurai", "cat",
    "dog", "whale", "forest", "mountain", "city", "street", "market", "cathedral", "bridge",
    "garden", "desert", "ocean", "village", "spaceship", "knight", "witch", "wizard",
    "princess", "tiger", "wolf", "deer", "horse", "octopus", "jellyfish", "cottage", "library",
    "train", "harbour", "waterfall", "volcano", "glacier", "canyon", "temple", "pagoda",
    "skyscraper", "café", "bakery", "portrait", "landscape", "still-life", "bouquet", "teapot",
    "bicycle", "motorcycle", "lantern",
)
ADJECTIVES = (
    "red", "blue", "golden", "silver", "ancient", "futuristic", "cozy", "misty", "stormy",
    "serene", "vibrant", "dark", "bright", "tiny", "giant", "abandoned", "overgrown", "neon",
    "frozen", "burning", "floating", "crystal", "wooden", "rusty", "elegant", "whimsical",
    "melancholic", "naïve", "ornate", "minimalist",
)
PLACES = (
    "in the snow", "at night", "under the sea", "on mars", "in a forest", "in tokyo",
    "in paris", "at dawn", "in the rain", "on a hill", "in a dream", "by the river",
    "in the clouds", "in a snow globe", "at the edge of the world", "in 東京", "at sunset",
    "in a cyberpunk alley",
)
STYLES = (
    "oil painting", "watercolor", "digital art", "photograph", "35mm film", "charcoal sketch",
    "ukiyo-e woodblock print", "pixel art", "3d render", "concept art", "studio ghibli style",
    "art nouveau poster", "baroque painting", "isometric illustration", "matte painting",
)
EXTRAS = (
    "highly detailed", "8k", "sharp focus", "volumetric lighting", "cinematic", "bokeh",
    "dramatic lighting", "soft light", "golden hour", "trending on artstation", "wide angle",
    "symmetrical", "intricate", "muted colors", "high contrast",
)
NEGATIVES = (
    "blurry", "low quality", "watermark", "text", "deformed hands", "extra fingers",
    "jpeg artifacts", "oversaturated", "cropped", "signature", "lowres", "bad anatomy",
)
BACKENDS = {"onnx-tiny": ("tiny-v1", "tiny-v2"), "torch-sd": ("sd15", "sdxl", "turbo")}
# Varied on purpose: common and rare words, prefixes, diacritics, CJK, operators, no hits.
QUERIES = (
    "fox", "astronaut", "lighthouse at night", "castle", "golden", "oil painting",
    "watercolor fox", "cat", "ca", "astro", "drag", "ne", "neon city", "misty forest", "cafe",
    "naive", "東京", "snow globe", "cinematic", "highly detailed", "the",
    "dramatic lighting castle", "pixel art robot", "ukiyo", "ukiyo-e wave",
    "whale under the sea", "tiny dragon", '"quoted" words', "AND", "fox OR owl", "-blurry",
    "star*", "watermark", "gold", "samurai at dawn", "abandoned train", "crystal jelly",
    "volc", "zebra", "frozen waterfall", "3d render", "35mm", "lantern festival",
    "rusty robot in the rain", "b", "wizard library", "octopus", "elegant cathedral",
    "portrait of a knight", "tea",
)
# fmt: on


def prompt(rng: random.Random) -> str:
    parts = [f"{rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} {rng.choice(PLACES)}"]
    parts.append(rng.choice(STYLES))
    parts += rng.sample(EXTRAS, rng.randint(0, 4))
    if rng.random() < 0.3:
        parts.insert(0, f"a {rng.choice(ADJECTIVES)} portrait of a {rng.choice(SUBJECTS)}")
    return ", ".join(parts)


Record = tuple[ImageMetadata, str, str]  # what insert_records takes


def metadata_stream(rng: random.Random, rows: int, now: float) -> Iterator[Record]:
    """Jobs of four images, oldest first, spread over YEARS."""
    step = YEARS * 365 * 86400 / max(1, rows // JOB_SIZE)
    for job in range(0, rows, JOB_SIZE):
        backend = rng.choice(list(BACKENDS))
        request = GenerationRequest(
            prompt(rng),
            negative_prompt=", ".join(rng.sample(NEGATIVES, 3)),
            seed=rng.randrange(2**32),
            width=512,
            height=512,
            steps=rng.choice([4, 20, 30]),
            guidance=rng.choice([1.0, 5.0, 7.5]),
            backend=backend,
            model=rng.choice(BACKENDS[backend]),
        )
        created = now - YEARS * 365 * 86400 + job // JOB_SIZE * step
        for rank in range(min(JOB_SIZE, rows - job)):
            meta = ImageMetadata(
                request.replace(seed=(request.seed or 0) + rank),
                sampler="euler",
                model_name=request.model,
                model_hash="0123456789",
                score=rng.random(),
                rank=rank,
                created_at=created,
            )
            yield meta, f"bench{job:07d}", f"images/bench/bench{job:07d}-{rank}.png"


def timed(fn: Callable[[], object], repeat: int = 1) -> list[float]:
    """Wall times of `repeat` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def bulk_insert(store: HistoryStore, rows: int, rng: random.Random) -> float:
    """Rows per second for `insert_records` in 10,000-row transactions (no image files).

    Only the calls are timed: the metadata is made beforehand, batch by batch.
    """
    stream = metadata_stream(rng, rows, time.time() - 3600)
    elapsed = 0.0
    while batch := [record for _, record in zip(range(10_000), stream, strict=False)]:
        start = time.perf_counter()
        store.insert_records(batch)
        elapsed += time.perf_counter() - start
    return rows / elapsed


def real_saves(store: HistoryStore, images: int, rng: random.Random) -> list[float]:
    """Milliseconds per image for save() of 64x64 noise PNGs: each job of four is timed
    (encode, metadata, temp file, fsync, rename, one transaction) and divided by four."""
    per_image = []
    stream = metadata_stream(rng, images, time.time())
    records = list(stream)
    for job in range(0, len(records), JOB_SIZE):
        chunk = records[job : job + JOB_SIZE]
        items = [(Image.effect_noise((64, 64), 40).convert("RGB"), m) for m, _, _ in chunk]
        (elapsed,) = timed(lambda items=items, job=job: store.save(items, f"real{job}"))
        per_image += [elapsed / len(items)] * len(items)
    return per_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--saves", type=int, default=200, help="real images saved with save()")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    table: list[tuple[str, float, float, str]] = []

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, HistoryStore(Path(tmp)) as store:
        rate = bulk_insert(store, args.rows, rng)
        print(
            f"bulk insert_records: {args.rows:,} rows at {rate:,.0f} rows/s "
            "(rows + FTS index + metadata JSON; no image files)"
        )
        saves = real_saves(store, args.saves, rng)
        table.append(
            (
                f"save() per image, {args.saves} 64x64 PNGs",
                statistics.median(saves),
                p95(saves),
                "-",
            )
        )
        total = store.count()
        for entry_id in rng.sample(range(1, total + 1), total // 100):  # 1% favourites
            store.set_favourite(entry_id, True)

        queries = list(QUERIES)
        for q in queries:  # warm the page cache once, as a running app would be
            store.search(q, limit=200)
        search = [timed(lambda q=q: store.search(q, limit=200))[0] for q in queries]
        table.append(
            (
                f"search, {len(queries)} queries, page of 200",
                statistics.median(search),
                p95(search),
                "<= 20 ms median",
            )
        )
        filtered = [
            timed(lambda q=q: store.search(q, limit=200, backend="torch-sd"))[0] for q in queries
        ]
        table.append(
            (
                "search + backend filter",
                statistics.median(filtered),
                p95(filtered),
                "<= 20 ms median",
            )
        )
        counts = [timed(lambda q=q: store.count(query=q))[0] for q in queries]
        table.append(("count(query=...)", statistics.median(counts), p95(counts), "-"))

        for offset in (0, 1_000, 10_000, 50_000, max(0, total - 200)):
            t = timed(lambda o=offset: store.list(offset=o, limit=200), repeat=20)
            table.append(
                (f"list 200 at offset {offset:,}", statistics.median(t), p95(t), "<= 10 ms median")
            )
        month = time.time() - 30 * 86400
        filters: dict[str, dict[str, object]] = {
            "favourites": {"favourites_only": True},
            "backend": {"backend": "onnx-tiny"},
            "model": {"model": "sdxl"},
            "last 30 days": {"since": month},
            "backend, offset 10,000": {"backend": "torch-sd", "offset": 10_000},
        }
        for name, f in filters.items():
            t = timed(lambda f=f: store.list(limit=200, **f), repeat=20)  # type: ignore[arg-type]
            table.append((f"list 200, {name}", statistics.median(t), p95(t), "<= 10 ms median"))
        t = timed(store.count, repeat=20)
        table.append(("count() of all rows", statistics.median(t), p95(t), "-"))
        t = timed(store.damage, repeat=5)  # run at every start (history_recovery)
        table.append(("quick check for damage (at start)", statistics.median(t), p95(t), "-"))

        first = timed(store.reconcile)[0]
        again = timed(store.reconcile)[0]
        table.append((f"reconcile, {total:,} rows, files absent (flags)", first, first, "-"))
        table.append(("reconcile again, nothing to change", again, again, "-"))

    print(f"\n{'operation':<48} {'median ms':>10} {'p95 ms':>9}  target")
    for name, median, high, target in table:
        print(f"{name:<48} {median:>10.2f} {high:>9.2f}  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
