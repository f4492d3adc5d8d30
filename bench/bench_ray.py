"""Ray cluster throughput: the built-in model on one worker and on two, side by side.

    sudo ip netns add studio-bench && sudo ip netns exec studio-bench ip link set lo up
    sudo ip netns exec studio-bench .venv/bin/python bench/bench_ray.py [--rounds 3]

(Ray binds each node to the machine's network address; on a machine that allows
loopback traffic only, run it in a namespace whose only interface is loopback, as above.)

A local cluster of single-CPU worker nodes (`ray.cluster_utils.Cluster`, each node its
own raylet; the head runs no work). For 1 and 2 workers, warm actors: two requests of 16
images (16 candidates, all kept) submitted together, timed from submit to all 32 images
saved in the history. Target: two workers >= 1.7x the throughput of one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from studio.core.engine import Engine
from studio.core.history import HistoryStore
from studio.core.ray_executor import RayExecutor
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest

PROMPT = "three yellow hearts on a black background"


def batch_seconds(engine: Engine, seed: int) -> float:
    requests = [
        GenerationRequest(PROMPT, backend="shapes", count=16, candidates=16, seed=seed + 100 * k)
        for k in range(2)
    ]
    started = time.perf_counter()
    jobs = [engine.submit(r) for r in requests]
    for job in jobs:
        job.wait()
        assert job.state.name == "DONE", job.error
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--nodes", type=int, choices=(1, 2), default=2, help="worker nodes (1: one of 2 CPUs)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # single-threaded workers
    if args.nodes == 1:  # the head runs both workers: one raylet fewer on the machine
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    else:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(2):
            cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="studio", log_to_driver=False)
    times: dict[int, list[float]] = {}
    try:
        for slots in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                history = HistoryStore(Path(folder))
                executor = RayExecutor(cluster.address, slots=slots)
                engine = Engine(PluginRegistry(), history, executor=executor)
                batch_seconds(engine, 0)  # load the actors' models: warm, not counted
                times[slots] = [batch_seconds(engine, r + 1) for r in range(args.rounds)]
                engine.shutdown()
                history.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    one, two = (statistics.median(times[s]) for s in (1, 2))
    print(
        f"built-in model, 32 images (2 requests x 16) a round, {args.rounds} rounds, "
        f"{args.nodes} worker node(s)"
    )
    print(f"{'workers':<10}{'median s':>10}{'images/s':>10}")
    for slots, median in ((1, one), (2, two)):
        print(f"{slots:<10}{median:>10.2f}{32 / median:>10.1f}")
    print(f"speed-up with two workers: {one / two:.2f}x (target >= 1.70x)")


if __name__ == "__main__":
    main()
