"""The distributions as a user gets them: each built as a wheel, installed into a fresh
virtual environment, and run from outside the repository.

The new environment has no pip and no copy of the heavy libraries: a `.pth` file adds this
environment's site-packages (numpy, torch, onnxruntime, PySide6...). Python does not run the
`.pth` files of a folder that a `.pth` file adds, so this environment's editable installs
(the repository's own packages) stay out; the test checks that every package of ours is
imported from the wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Each distribution's folder, its import package and its name.
DISTRIBUTIONS = {
    "studio": (".", "studio"),
    "shapes_backend": ("plugins/shapes", "studio-shapes"),
    "shapes_lab": ("plugins/shapes-lab", "studio-shapes-lab"),
    "sd_backends": ("plugins/diffusion", "studio-sd"),
    "example_backend": ("docs/example-plugin", "studio-example-backend"),
}
BACKENDS = {  # every shipped backend and the distribution that declares it
    "shapes": "studio-shapes",
    "shapes-torch": "studio-shapes",
    "diffusion": "studio-sd",
    "diffusion-onnx": "studio-sd",
    "example-gradient": "studio-example-backend",
}
SHAPES_WEIGHTS = (
    "model.json",
    "text-vocab.json",
    "transformer.safetensors",
    "image-tokenizer.safetensors",
    "ranker.safetensors",
    "transformer-prefix.onnx",
    "transformer-step.onnx",
    "ranker-text.onnx",
    "ranker-image.onnx",
)
DATA = {  # files the code reads at run time, which the wheels must carry
    "studio": ["resources/styles.csv"],
    "shapes_backend": [f"weights/{name}" for name in SHAPES_WEIGHTS],
    "shapes_lab": ["eval-prompts-v1.tsv", "judge/judge-v1.safetensors"],
    "sd_backends": ["studio-plugin.toml", "configs/**/*.json"],  # a pattern: all in the source
    "example_backend": ["colours.toml"],
}
# Not copied to build from: caches, earlier builds, this checkout's environment.
NOT_SOURCES = shutil.ignore_patterns(
    ".*", "build", "dist", "*.egg-info", "__pycache__", "checkpoints", "runs"
)
BIN = "Scripts" if os.name == "nt" else "bin"


@dataclass
class Installed:
    wheels: dict[str, Path]  # import package -> its wheel
    venv: Path
    python: Path
    home: Path  # STUDIO_HOME
    outside: Path  # the working directory: not the repository
    env: dict[str, str]

    def run(self, *args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in args],
            cwd=self.outside,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == code, f"{args} exited {done.returncode}:\n{done.stderr}"
        return done

    def studio(self, *args: str | Path, code: int = 0) -> Any:
        studio = self.venv / BIN / ("studio.exe" if os.name == "nt" else "studio")
        done = self.run(studio, *args, "--json", code=code)
        return json.loads(done.stdout) if code == 0 else done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    wheels: dict[str, Path] = {}
    for package, (folder, _) in DISTRIBUTIONS.items():
        # Built from a copy: setuptools writes build/ and *.egg-info beside the sources,
        # and a stale build/lib would carry deleted modules into the wheel.
        source = base / "sources" / package
        shutil.copytree(ROOT / folder, source, ignore=NOT_SOURCES)
        out = base / "wheels" / package
        _check(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--quiet",
                "-w",
                out,
                source,
            ]
        )
        (wheels[package],) = out.glob("*.whl")

    venv = base / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    purelib = _check([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    libraries = sysconfig.get_paths()["purelib"]  # this environment's: the heavy libraries
    Path(purelib.strip(), "studio-test-libraries.pth").write_text(libraries + "\n")
    _check(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            *wheels.values(),
        ]
    )

    outside = base / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.pop("VIRTUAL_ENV", None)
    env.update(STUDIO_HOME=str(base / "studio-home"), PYTHONNOUSERSITE="1")
    return Installed(wheels, venv, python, base / "studio-home", outside, env)


def _check(command: list[Any]) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_each_wheel_holds_its_package_its_modules_and_its_data(installed: Installed) -> None:
    for package, wheel in installed.wheels.items():
        names = set(zipfile.ZipFile(wheel).namelist())
        tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
        assert tops == {package}, f"{wheel.name} holds {sorted(tops)}"
        source = ROOT / DISTRIBUTIONS[package][0]
        modules = {
            p.relative_to(source).as_posix()
            for p in (source / package).rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert not modules - names, f"{wheel.name} lacks {sorted(modules - names)}"
        data = set()
        for name in DATA.get(package, []):
            found = {p.relative_to(source).as_posix() for p in (source / package).glob(name)}
            data |= found if "*" in name else {f"{package}/{name}"}
            assert found, f"no {package}/{name} in {source}"
        manifests = {p.relative_to(source).as_posix() for p in source.glob("*/studio-plugin.toml")}
        missing = (data | manifests) - names
        assert not missing, f"{wheel.name} lacks {sorted(missing)}"
    app = zipfile.ZipFile(installed.wheels["studio"]).namelist()
    assert not [n for n in app if n.startswith(("plugins/", "shapes_backend/", "shapes_lab/"))]
    shapes = zipfile.ZipFile(installed.wheels["shapes_backend"]).namelist()
    assert not [n for n in shapes if n.startswith("shapes_lab/")]


def test_our_packages_are_imported_from_the_wheels_not_the_repository(
    installed: Installed,
) -> None:
    script = (
        "import importlib, json, sys\n"
        f"names = {sorted(DISTRIBUTIONS)!r}\n"
        "print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))\n"
    )
    files = json.loads(installed.run(installed.python, "-c", script).stdout)
    for package, file in files.items():
        assert Path(file).is_relative_to(installed.venv), f"{package} is imported from {file}"
    assert not installed.outside.is_relative_to(ROOT)


def test_every_shipped_backend_is_listed_and_loads(installed: Installed) -> None:
    rows = {row["id"]: row for row in installed.studio("backends")}
    assert set(BACKENDS) <= set(rows), f"listed: {sorted(rows)}"
    for backend_id, distribution in BACKENDS.items():
        row = rows[backend_id]
        assert row["status"] == "ready", f"{backend_id}: {row['error']}\n{row['traceback']}"
        assert row["error"] == ""
        assert row["distribution"] == distribution


def test_generate_with_the_default_backend(installed: Installed) -> None:
    out = installed.studio("generate", "two red circles", "--seed", "3")
    assert out["request"]["backend"] == "shapes"
    assert len(out["images"]) == out["request"]["count"] >= 1
    for image in out["images"]:
        path = Path(image["path"])
        assert path.is_file() and path.is_relative_to(installed.home)
        info = installed.studio("info", path)
        assert (info["prompt"], info["extra"]["Backend"]) == ("two red circles", "shapes")
        candidates = out["request"]["candidates"]
        assert 3 <= info["seed"] < 3 + candidates  # candidate i's own seed: 3 + i
        with Image.open(path) as png:
            assert png.format == "PNG"
            assert any("two red circles" in str(value) for value in png.info.values())
        break  # one image's metadata is enough: the others are written by the same code


def test_generate_with_the_example_backend(installed: Installed) -> None:
    prompt = "a red to blue gradient"
    out = installed.studio("generate", prompt, "--backend", "example-gradient", "--seed", "1")
    images = out["images"]
    assert [i["seed"] for i in images] == [1 + n for n in range(len(images))]
    assert {i["backend"] for i in images} == {"example-gradient"}
    with Image.open(images[1]["path"]) as png:
        second = np.asarray(png.convert("RGB"))
    red, green, blue = second.reshape(-1, 3).mean(axis=0)
    assert green < red and green < blue  # between red and blue, not grey
    # Image i is its own seed's: asked for alone, the second image comes out the same.
    again = installed.studio(
        "generate", prompt, "--backend", "example-gradient", "--seed", "2", "--count", "1"
    )
    with Image.open(again["images"][0]["path"]) as png:
        assert np.array_equal(np.asarray(png.convert("RGB")), second)


def test_a_plugin_command(installed: Installed) -> None:
    colours = installed.studio("gradient-colours", "--starting", "b")
    assert colours == {"black": [0, 0, 0], "blue": [40, 80, 215]}
    error = installed.studio("gradient-colours", "--starting", "zz", code=2)
    assert error.strip() == "studio: no colour starts with 'zz'"
