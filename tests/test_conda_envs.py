"""Conda reproduction (`--sdm conda`, the SLURM profile's default).

* A stub `conda` on PATH "creates" each env as a bare Python environment that sees the venv's
  third-party packages but NOT smcbench (as a real env built from envs/*.yaml would), and records
  which env file it was given. Real jobs then run through `snakemake --sdm conda`: they import
  smcbench only if the workflow puts the checkout's src/ on their path after activation
  (Snakemake deletes PYTHONPATH from conda jobs).
* Every rule's env pins every third-party package its code imports (derived from the step's
  function in cli.py, the family modules and the method modules, statically).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from smcbench import versions as V  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RULES = ROOT / "workflow" / "rules"

STUB = r'''#!{python}
"""A stand-in for conda: enough of its CLI for Snakemake's --sdm conda."""
import json, os, subprocess, sys
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
if args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": root, "platform": "linux-64", "conda_version": "24.11.0"}}))
elif args[:1] == ["--version"]:
    print("conda 24.11.0")
elif args[:1] == ["clean"]:
    pass
elif args[:1] == ["config"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    spec = args[args.index("--file") + 1].strip('"')
    prefix = args[args.index("--prefix") + 1].strip('"')
    subprocess.run([{base!r}, "-m", "venv", "--without-pip", prefix], check=True)
    site = subprocess.run([os.path.join(prefix, "bin", "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the venv's packages as plain path entries: its .pth files (smcbench's editable install)
    # are not processed, so smcbench itself is not importable, as in a real env
    with open(os.path.join(site, "venv_packages.pth"), "w") as f:
        f.write({purelib!r} + "\n")
    with open(os.path.join(root, "created.log"), "a") as f:
        f.write(json.dumps({{"prefix": prefix, "name": __import__("yaml").safe_load(open(spec))["name"]}}) + "\n")
else:
    sys.exit("stub conda: unsupported " + " ".join(args))
'''

ACTIVATE = 'export PATH="$1/bin:$PATH"; export CONDA_PREFIX="$1"\n'

MINI = {
    "suite": "mini", "seeds": [0], "levels": [1],
    "methods": {"dense": {}, "omp_before": {}},
    "datasets": {"d1": {"family": "commonsense", "source": "synthetic", "models": ["m1"], "scope": "paper",
                        "settings": {"variant": "easy"}, "training": {"lr": 0.1, "epochs": 1}}},
    "models": {"m1": {"family": "commonsense", "arch": "roberta_mc", "source": "synthetic"}},
}


@pytest.fixture(scope="module")
def stub_conda(tmp_path_factory):
    import sysconfig

    root = tmp_path_factory.mktemp("conda")
    (root / "bin").mkdir()
    conda = root / "bin" / "conda"
    conda.write_text(STUB.format(python=sys.executable, base=getattr(sys, "_base_executable", sys.executable),
                                 purelib=sysconfig.get_paths()["purelib"]))
    conda.chmod(0o755)
    (root / "bin" / "activate").write_text(ACTIVATE)
    return root


def _env_without_pythonpath(stub_root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{stub_root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def test_a_real_job_runs_through_sdm_conda(stub_conda, tmp_path):
    cfg = tmp_path / "mini.yaml"
    cfg.write_text(yaml.safe_dump(MINI))
    target = "results/mini/data/d1/all/meta.json"
    out = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                          str(cfg), "-c1", "--sdm", "conda", "--conda-prefix", str(tmp_path / "envs"), target],
                         capture_output=True, text=True, env=_env_without_pythonpath(stub_conda), timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert (tmp_path / target).is_file()
    created = [json.loads(line) for line in (stub_conda / "created.log").read_text().splitlines()]
    assert {c["name"] for c in created} >= {"smcbench-torch"}
    # the env really lacks smcbench: only the workflow's own path setting made the jobs work
    python = Path(created[0]["prefix"]) / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import smcbench"], capture_output=True, text=True,
                           env=_env_without_pythonpath(stub_conda))
    assert probe.returncode != 0 and "No module named 'smcbench'" in probe.stderr
    probe = subprocess.run([str(python), "-c", "import torch, yaml"], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr


# --- each rule's env against what its code imports ---------------------------------------------
# import name -> PyPI name, where they differ or the package is not installed here
IMPORT_TO_PIP = {"yaml": "pyyaml", "esm": "fair-esm", "torch_geometric": "torch-geometric", "sklearn": "scikit-learn"}
CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib", "seaborn-base": "seaborn"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_packages(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    names = set()
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):
            names.update(_norm(re.split(r"[=<>\[ ]", p)[0]) for p in dep.get("pip", []))
        else:
            name = re.split(r"[=<> ]", dep)[0]
            names.add(_norm(CONDA_TO_PIP.get(name, name)))
    return names


def _guarded(handlers) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for h in handlers:
        t = h.type
        elts = t.elts if isinstance(t, ast.Tuple) else [t]
        if any(getattr(e, "id", None) in names for e in elts):
            return True
    return False


def third_party_imports(module: str) -> set[str]:
    """Top-level third-party packages ``module`` imports anywhere (optional imports, inside a
    ``try: ... except ImportError``, excepted)."""
    tree = ast.parse(V.module_file(module).read_text())
    found: set[str] = set()

    def visit(node, guarded):
        if isinstance(node, ast.Try):
            for n in node.body:
                visit(n, guarded or _guarded(node.handlers))
            for n in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(n, guarded)
            return
        if not guarded and isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif not guarded and isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return {m for m in found if m not in sys.stdlib_module_names and m != "smcbench"}


def step_modules(step: str) -> list[str]:
    """smcbench modules the `python -m smcbench <step>` function of cli.py imports."""
    tree = ast.parse((ROOT / "src" / "smcbench" / "cli.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == f"cmd_{step}")
    mods = []
    for node in ast.walk(fn):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            mods.append(f"smcbench.{node.module}" if node.module else "smcbench")
    # helpers of cli.py the step calls (_spec, _local_source, _threads) import too
    called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for helper in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in called):
        mods += [f"smcbench.{n.module}" for n in ast.walk(helper) if isinstance(n, ast.ImportFrom) and n.level == 1]
        mods += ["torch" for n in ast.walk(helper) if isinstance(n, ast.Import) and n.names[0].name == "torch"]
    return mods


def rule_table() -> dict[str, tuple[str, str]]:
    """rule name -> (conda directive, smcbench step) from workflow/rules/*.smk."""
    table = {}
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            conda = re.search(r"^    conda:\n        (\S+)", block, flags=re.M)
            step = re.search(r"python -m smcbench (\w+)", block) or re.search(r'_analyze\("', block)
            if step is None:
                continue
            table[name] = (conda.group(1) if conda else "", step.group(1) if step.re.groups else "analyze")
    return table


def env_constants() -> dict[str, Path]:
    text = (RULES / "common.smk").read_text()
    consts = {m.group(1): (RULES / m.group(2)).resolve()
              for m in re.finditer(r'^(ENV_\w+) = "([^"]+)"', text, flags=re.M)}
    by_arch = {m.group(1): (RULES / m.group(2)).resolve()
               for m in re.finditer(r'"(\w+)": "(\.\./\.\./envs/[^"]+)"', text)}
    return consts, by_arch


def test_every_rule_has_an_env_that_exists():
    consts, by_arch = env_constants()
    assert set(consts) >= {"ENV_TORCH", "ENV_ANALYSIS"} and "esm_if1" in by_arch
    for path in [*consts.values(), *by_arch.values()]:
        assert path.is_file(), path
    table = rule_table()
    assert {"download_dataset", "prepare", "pretrained", "dense", "train", "train_imp", "results",
            "analysis_curves"} <= set(table)
    for rule, (conda, _step) in table.items():
        assert conda in consts or conda == "model_env", f"rule {rule}: conda {conda!r}"


def test_each_rule_env_pins_what_its_code_imports():
    from importlib.metadata import packages_distributions

    from smcbench.sparsity.registry import METHODS
    from smcbench.tasks import FAMILIES

    dists = {k: [_norm(d) for d in v] for k, v in packages_distributions().items()}
    consts, by_arch = env_constants()
    families = list(FAMILIES.values())
    methods = sorted({info.cls.split(":")[0] for info in METHODS.values()})
    esmif_only = set()
    for module in V.closure(families):
        if module.startswith("smcbench.tasks.protein"):
            esmif_only |= {"esm", "torch_geometric", "biotite"} & third_party_imports(module)
    problems = []
    for rule, (conda, step) in rule_table().items():
        roots = [m for m in step_modules(step) if m.startswith("smcbench")] if step != "analyze" else ["smcbench.analysis.cli"]
        extra = {m for m in step_modules(step) if not m.startswith("smcbench")} if step != "analyze" else set()
        if step in ("prepare", "pretrained", "train", "mask"):
            roots += families
        if step in ("train", "mask"):
            roots += methods
        imports = set(extra)
        for module in V.closure(roots, exclude=frozenset({"smcbench.cli"})):
            imports |= third_party_imports(module)
        envs = [consts[conda]] if conda in consts else [consts["ENV_TORCH"], *by_arch.values()]
        for env in envs:
            needed = imports - (esmif_only if env == consts["ENV_TORCH"] else set())
            have = env_packages(env)
            for name in sorted(needed):
                pips = {_norm(IMPORT_TO_PIP[name])} if name in IMPORT_TO_PIP else set(dists.get(name, [_norm(name)]))
                if not pips & have:
                    problems.append(f"rule {rule} ({env.name}): imports {name} ({', '.join(sorted(pips))}) not in the env")
    assert not problems, "\n".join(problems)


def test_the_env_check_can_fail(tmp_path):
    env = tmp_path / "e.yaml"
    env.write_text(textwrap.dedent("""\
        name: x
        dependencies:
          - python=3.11
          - pytorch=2.13.0=cpu*
          - pip:
              - fair-esm==2.0.0
        """))
    assert env_packages(env) == {"python", "torch", "fair-esm"}
    assert "pandas" in third_party_imports("smcbench.analysis.data")
    assert "torch" not in third_party_imports("smcbench.download")
