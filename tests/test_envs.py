"""The conda envs the cluster runs and the pip pins dev/CI run are the same software.

* every package pinned both in ``requirements.txt`` and in an ``envs/*.yaml`` has the same version
  (a local version suffix such as ``+cu128`` aside; conda names mapped to pip names);
* every env pins every package exactly (``name=version``), on conda-forge without ``defaults``;
* every env file the workflow names exists; the ESM-IF1 env is the torch env plus fair-esm.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
# conda-forge package name -> PyPI name, where they differ
CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib", "seaborn-base": "seaborn"}
# conda-only packages without a PyPI counterpart in requirements.txt
CONDA_ONLY = {"python", "pip", "cuda-version", "cudatoolkit", "pytorch-cuda"}


def norm(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public_version(version: str) -> str:
    """``2.13.0+cu128`` -> ``2.13.0`` (local version labels name builds, not releases)."""
    return version.split("+", 1)[0]


def pip_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        assert m, f"not an exact pin: {line!r}"
        pins[norm(m.group(1))] = public_version(m.group(3))
    return pins


def env_pins(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(conda pins by pip name, pip-section pins) of one env file."""
    doc = yaml.safe_load(path.read_text())
    conda, pip = {}, {}
    for dep in doc.get("dependencies", []):
        if isinstance(dep, dict):
            pip.update(pip_pins(dep.get("pip", [])))
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==?)\s*([^=\s]+)(?:=(\S+))?", dep.strip())
        assert m, f"{path.name}: {dep!r} is not pinned (write name=version)"
        name = norm(m.group(1))
        conda[norm(CONDA_TO_PIP.get(name, name))] = public_version(m.group(3))
    return conda, pip


REQUIREMENTS = pip_pins((ROOT / "requirements.txt").read_text().splitlines())


def test_env_files_exist():
    names = {p.name for p in ENV_FILES}
    assert {"torch.yaml", "analysis.yaml"} <= names


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_agree_with_requirements(path):
    conda, pip = env_pins(path)
    mismatches = []
    for name, version in {**conda, **pip}.items():
        if name in CONDA_ONLY:
            continue
        if name in REQUIREMENTS and REQUIREMENTS[name] != version:
            mismatches.append(f"{name}: {path.name} has {version}, requirements.txt has {REQUIREMENTS[name]}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_channels(path):
    doc = yaml.safe_load(path.read_text())
    channels = doc.get("channels", [])
    assert "conda-forge" in channels, f"{path.name}: add the conda-forge channel"
    assert "defaults" not in channels, f"{path.name}: the defaults channel is not reproducible here; use nodefaults"


def test_torch_env_is_a_cuda_build():
    doc = yaml.safe_load((ROOT / "envs" / "torch.yaml").read_text())
    torch_dep = [d for d in doc["dependencies"] if isinstance(d, str) and d.startswith("pytorch")]
    assert torch_dep and re.search(r"=cuda", torch_dep[0]), torch_dep


def test_every_env_file_named_by_the_workflow_exists():
    """Rules name their env through constants of workflow/rules/common.smk (ENV_*, ENV_BY_ARCH);
    tests/test_conda_envs.py checks which rule gets which."""
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    paths = re.findall(r'"(\.\./\.\./envs/[^"]+)"', text)
    assert len(paths) >= 3, paths
    missing = [p for p in paths if not (ROOT / "workflow" / "rules" / p).resolve().is_file()]
    assert not missing, missing


def test_esmif_env_extends_the_torch_env():
    torch_conda, torch_pip = env_pins(ROOT / "envs" / "torch.yaml")
    esm_conda, esm_pip = env_pins(ROOT / "envs" / "esmif.yaml")
    assert torch_conda.items() <= esm_conda.items() and torch_pip.items() <= esm_pip.items()
    assert "fair-esm" in esm_pip


def test_pin_parser_catches_disagreement(tmp_path):
    """The checks above can fail: a wrong version and an unpinned package are reported."""
    env = tmp_path / "bad.yaml"
    env.write_text("channels: [conda-forge]\ndependencies:\n  - numpy=1.0.0\n  - pip:\n      - torch==2.13.0+cu128\n")
    conda, pip = env_pins(env)
    assert conda["numpy"] == "1.0.0" != REQUIREMENTS["numpy"]
    assert pip["torch"] == REQUIREMENTS["torch"]
    env.write_text("dependencies:\n  - numpy\n")
    with pytest.raises(AssertionError, match="not pinned"):
        env_pins(env)
