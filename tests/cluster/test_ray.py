"""Jobs on a real multi-node Ray cluster (`ray.cluster_utils.Cluster`: a head and worker
nodes, each its own raylet, on this machine): the same pixels as a local run, a node lost
mid-batch, a cluster too small, cancel across the wire.

Ray binds each node to the machine's network address, never to loopback; this workplace
allows traffic on loopback only. So these tests run where loopback is the only interface:
`dev.py test` runs them in a network namespace of their own, and elsewhere they skip.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from studio.core.engine import Engine  # noqa: E402
from studio.core.history import HistoryStore  # noqa: E402
from studio.core.jobs import JobState, Progress  # noqa: E402
from studio.core.ray_executor import RayExecutor  # noqa: E402
from studio.core.registry import PluginRegistry  # noqa: E402
from studio.core.request import GenerationRequest  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        {name for _, name in socket.if_nameindex()} != {"lo"},
        reason="Ray would use this machine's network address: run in a loopback-only "
        "network namespace (dev.py test does)",
    ),
]
WAIT = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A head that runs no work and two worker nodes of one CPU each. The fake backend is
    declared for every process of the cluster through PYTHONPATH."""
    from conftest import FAKE_BACKENDS, FAKES, write_distribution

    site = tmp_path_factory.mktemp("site")
    write_distribution(site, FAKE_BACKENDS)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), str(FAKES), old or ""])
    sys.path[:0] = [str(site), str(FAKES)]  # and for this process, the driver
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="studio", log_to_driver=False)
    cluster.workers = workers  # type: ignore[attr-defined]
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    del sys.path[:2]
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def digests(job) -> list[str]:
    return [
        hashlib.sha256(np.asarray(Image.open(e.path)).tobytes()).hexdigest()[:16]
        for e in job.results
    ]


@contextmanager
def engine_on(folder: Path, executor=None, registry=None) -> Iterator[Engine]:
    history = HistoryStore(folder)
    engine = Engine(registry or PluginRegistry(), history, executor=executor)
    try:
        yield engine
    finally:
        engine.shutdown()
        history.close()


def run(request: GenerationRequest, folder: Path, executor=None, registry=None):
    with engine_on(folder, executor, registry) as engine:
        job = engine.submit(request)
        assert job.wait(WAIT), "the job never finished"
        return job, digests(job)


def first_progress(engine: Engine, request: GenerationRequest):
    """Submit `request` and return its job once it has reported progress."""
    seen = []
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, Progress) else None)
    job = engine.submit(request)
    deadline = time.monotonic() + WAIT
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def fake(**fields) -> GenerationRequest:
    return GenerationRequest("a fake", backend="fake", width=16, height=16, **fields)


def test_the_built_in_model_draws_the_same_pixels_on_the_cluster(cluster, tmp_path) -> None:
    request = GenerationRequest("a cyan triangle and a purple star", backend="shapes", seed=21)
    remote, on_cluster = run(request, tmp_path / "a", RayExecutor(cluster.address))
    local, here = run(request, tmp_path / "b")
    assert remote.state is JobState.DONE, remote.error
    assert on_cluster == here  # the same images, in the same (ranked) order
    assert [e.request.seed for e in remote.results] == [e.request.seed for e in local.results]
    assert [e.metadata.score for e in remote.results] == pytest.approx(
        [e.metadata.score for e in local.results], abs=1e-5
    )


def test_a_tiny_sd_model_draws_the_same_pixels_on_the_cluster(cluster, tmp_path) -> None:
    from support.random_sd import build_random_sd

    from studio.core.models import ModelLibrary

    model = build_random_sd(tmp_path / "models" / "tiny")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    request = GenerationRequest(
        "a cosy reading nook",
        backend="diffusion",
        model=str(model),
        width=64,
        height=64,
        steps=2,
        count=2,
        candidates=2,
        seed=5,
    )
    executor = RayExecutor(cluster.address, lambda: library)
    remote, on_cluster = run(request, tmp_path / "a", executor)
    assert remote.state is JobState.DONE, remote.error
    registry = PluginRegistry()
    registry.model_library = lambda: library
    local, here = run(request, tmp_path / "b", registry=registry)
    assert local.state is JobState.DONE, local.error
    assert on_cluster == here  # one image per worker, two in one batch here


def test_a_node_lost_mid_batch_has_its_images_drawn_again(cluster, tmp_path) -> None:
    executor = RayExecutor(cluster.address)
    request = fake(count=4, candidates=4, seed=8, steps=30, options={"step_s": 0.1})
    with engine_on(tmp_path / "a", executor) as engine:
        job = first_progress(engine, request)
        assert len(executor.actors) == 2
        lost = ray.get(executor.actors[0].node.remote())
        node = next(n for n in cluster.workers if n.node_id == lost)
        cluster.remove_node(node)  # the raylet and its workers end, as a machine lost
        assert job.wait(WAIT), "hung after losing a node"
        assert job.state is JobState.DONE, job.error
        assert len(executor.actors) == 1  # one was lost, and the other drew its images
        again = digests(job)
        cluster.workers.remove(node)
        cluster.workers.append(cluster.add_node(num_cpus=1))  # for the tests after this one
        cluster.wait_for_nodes()
    _, here = run(request, tmp_path / "b")
    assert again == here


def test_a_cluster_too_small_fails_with_the_reason(cluster, tmp_path) -> None:
    registry = PluginRegistry()
    executor = RayExecutor(cluster.address, slots=5, place_s=3)
    job, _ = run(fake(), tmp_path, executor, registry)
    assert job.state is JobState.FAILED
    assert job.error.startswith("Ray: the Ray cluster could not place 5 workers")
    assert registry.record("fake").error == ""  # the cluster failed, not the backend


def test_cancel_crosses_the_wire(cluster, tmp_path) -> None:
    request = fake(count=2, candidates=2, steps=100, options={"step_s": 0.1})
    with engine_on(tmp_path, RayExecutor(cluster.address)) as engine:
        job = first_progress(engine, request)
        started = time.monotonic()
        engine.cancel(job.id)
        assert job.wait(WAIT)
        assert job.state is JobState.CANCELLED
        assert time.monotonic() - started < 3  # a step or two, not the 10 s left


def test_the_command_line_sends_a_job_to_the_cluster(cluster, tmp_path, capsys) -> None:
    import json

    from studio.cli import main

    home = str(tmp_path / "home")
    args = ["generate", "two red circles", "--seed", "4", "--data-dir", home, "--json"]
    assert main([*args, "--ray", cluster.address]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    pixels = [
        [np.asarray(Image.open(image["path"])).tobytes() for image in run["images"]]
        for run in (remote, local)
    ]
    assert pixels[0] == pixels[1] and len(pixels[0]) == 4
