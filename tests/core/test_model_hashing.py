"""Model files are hashed only where a hash is needed, once, and in the background while
a job loads its model; the hash cache is shared safely by threads and processes."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.model_library import count_hashing, library_files, short, weights

from studio.core.app import Core
from studio.core.jobs import JobState
from studio.core.model_files import ModelFileError
from studio.core.models import HashCache, ModelLibrary

WAIT = 10  # seconds; only reached when something is broken


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_hashing(monkeypatch)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- lookups --------------------------------------------------------------------------


def test_finding_a_model_by_name_or_path_hashes_nothing(tmp_path, hashed) -> None:
    files = library_files(tmp_path / "models")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    assert library.find("dream").path == files["dream"]
    assert library.find(str(files["other"])).path == files["other"]
    assert library.find("pipeline").path == files["pipeline"]
    assert library.find("ink").path == files["ink"]
    with pytest.raises(ModelFileError, match="no model named"):
        library.find("a-misspelt-name")  # not a short hash: nothing is hashed to say so
    assert hashed == [] and not (tmp_path / "hashes.json").exists()


def test_a_short_hash_is_looked_up_only_when_no_name_matches_each_file_hashed_once(
    tmp_path, hashed
) -> None:
    files = library_files(tmp_path / "models")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    assert library.find(short(files["other"])).path == files["other"]
    in_folder = ["diffusion_pytorch_model.safetensors", "model_index.json"]
    assert sorted(hashed) == sorted(
        ["dream.safetensors", "other.safetensors", "ink.safetensors", *in_folder]
    )
    hashed.clear()
    again = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    assert again.find(short(files["dream"]).upper()).path == files["dream"]
    assert hashed == []  # cached by path, size and mtime
    weights(files["dream"], 9)  # changed: hashed anew, alone
    again.find(short(files["dream"]))
    assert hashed == ["dream.safetensors"]


def test_a_cached_hash_is_shown_without_hashing(tmp_path, hashed) -> None:
    files = library_files(tmp_path / "models")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    dream, pipeline = library.find("dream"), library.find("pipeline")
    assert library.cached_short_hash(dream) is None and library.cached_short_hash(pipeline) is None
    assert hashed == []
    assert library.short_hash(dream) == short(files["dream"])
    folder_hash = library.short_hash(pipeline)
    hashed.clear()
    assert library.cached_short_hash(dream) == short(files["dream"])
    assert library.cached_short_hash(pipeline) == folder_hash
    assert hashed == []


def test_a_folder_reports_its_progress_in_bytes_of_all_its_files(tmp_path) -> None:
    files = library_files(tmp_path / "models")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    seen: list[tuple[int, int]] = []
    library.short_hash(library.find("pipeline"), lambda done, total: seen.append((done, total)))
    total = sum(f.stat().st_size for f in files["pipeline"].rglob("*") if f.is_file())
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# -- the cache, shared ----------------------------------------------------------------


def test_threads_asking_for_one_file_hash_it_once(tmp_path, hashed) -> None:
    file = weights(tmp_path / "big.safetensors", 4)
    cache = tmp_path / "hashes.json"
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(HashCache(cache).sha256(file)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert answers == [hashlib.sha256(file.read_bytes()).hexdigest()] * 4
    assert hashed == ["big.safetensors"]


def test_processes_sharing_the_cache_keep_each_others_hashes(tmp_path, hashed) -> None:
    first, second = weights(tmp_path / "a.safetensors", 5), weights(tmp_path / "b.safetensors", 6)
    cache_file = tmp_path / "hashes.json"
    mine = HashCache(cache_file)  # read before the other process writes
    script = (
        "import sys; from pathlib import Path; from studio.core.models import HashCache; "
        "HashCache(Path(sys.argv[1])).sha256(Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", script, cache_file, first], check=True, timeout=60)
    assert mine.cached(first) == hashlib.sha256(first.read_bytes()).hexdigest()
    mine.sha256(second)  # written over the other process's entry, which stays
    assert hashed == ["b.safetensors"]
    fresh = HashCache(cache_file)
    assert fresh.cached(first) is not None and fresh.cached(second) is not None


# -- the engine: the job's model and add-ons only, while it loads -----------------------


@pytest.fixture
def opened(install_plugins, tmp_path) -> Iterator[tuple[Core, dict[str, Path]]]:
    install_plugins({"library": "library_backend:FakeLibraryBackend"})
    import library_backend

    with Core.open(tmp_path / "data") as core:
        yield core, library_files(core.paths.models)
        if library_backend.LOAD_GATE is not None:
            library_backend.LOAD_GATE.set()
    library_backend.LOAD_GATE = None


def test_generating_hashes_only_the_model_and_loras_used(opened, hashed) -> None:
    core, files = opened
    request = core.request("a <lora:ink:0.5>", backend="library", model="dream", width=16)
    job = core.engine.submit(request.replace(height=16, count=1))
    assert job.wait(WAIT) and job.state is JobState.DONE, job.error
    assert sorted(hashed) == ["dream.safetensors", "ink.safetensors#body"]
    (entry,) = job.results
    assert entry.metadata.model_hash == short(files["dream"])
    assert entry.metadata.addons["ink"][0] == "ink" and len(entry.metadata.addons["ink"][1]) == 12


def test_the_model_is_hashed_while_it_loads(opened, hashed) -> None:
    import library_backend

    core, files = opened
    library_backend.LOAD_GATE = threading.Event()
    request = core.request("a", backend="library", model="", width=16, height=16, count=1)
    job = core.engine.submit(request)  # no model named: the backend's default, "dream"
    wait_until(lambda: HashCache(core.paths.model_hashes).cached(files["dream"]) is not None)
    assert job.state is JobState.LOADING
    library_backend.LOAD_GATE.set()
    assert job.wait(WAIT) and job.state is JobState.DONE, job.error
    assert hashed == ["dream.safetensors"]  # once: the backend's model_info found it cached
    assert job.results[0].metadata.model_hash == short(files["dream"])


# -- studio models list ---------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["piped", "terminal"])
def test_the_listing_shows_cached_hashes_and_hashes_the_others_saying_so(
    tmp_path, hashed, stream
) -> None:
    from studio.cli_hashing import CLEAR_LINE, ListedHashes
    from studio.core.load_progress import bytes_read

    files = library_files(tmp_path / "models")
    library = ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")
    dream, other = library.find("dream"), library.find("other")
    library.short_hash(other)
    hashed.clear()
    assert ListedHashes(library, compute=False, quiet=False, stream=stream).of(dream) is None
    listed = ListedHashes(library, compute=True, quiet=False, stream=stream)
    assert listed.of(other) == short(files["other"]) and hashed == [] and not stream.getvalue()
    assert listed.of(dream) == short(files["dream"]) and hashed == ["dream.safetensors"]
    if isinstance(stream, Terminal):
        size = files["dream"].stat().st_size
        assert f"\rhashing dream {bytes_read(size, size, 1)}" in stream.getvalue()
        assert stream.getvalue().endswith(CLEAR_LINE)
    else:
        assert stream.getvalue() == "hashing dream\n"


def test_models_list_no_hash_computes_none(tmp_path, hashed, capsys) -> None:
    from studio.cli import main

    library_files(tmp_path / "models")
    assert main(["models", "add", str(tmp_path / "models")]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--no-hash", "--json"]) == 0
    rows = [row for row in json.loads(capsys.readouterr().out) if "hash" in row]
    assert rows and all(row["hash"] is None for row in rows) and hashed == []
    assert main(["models", "list", "--no-hash"]) == 0
    assert "[not hashed]" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    rows = [row for row in json.loads(capsys.readouterr().out) if "hash" in row]
    assert all(len(row["hash"]) == 10 for row in rows) and hashed
