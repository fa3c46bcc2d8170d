"""``python -m smcbench <step> …``: the steps the workflow's rules call. Argument parsing only;
heavy modules (torch, transformers) are imported inside the step that needs them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: bad JSON argument ({e.msg} at {e.pos}): {text[:80]!r}")
    if not isinstance(value, dict):
        raise SystemExit(f"error: expected a JSON object, got {text[:80]!r}")
    return value


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _logger(path: str | None):
    fh = open(path, "a", encoding="utf-8") if path else None

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
        if fh:
            fh.write(msg + "\n")
            fh.flush()

    return log


def _threads(n: int | None) -> None:
    import torch

    threads = n or int(os.environ.get("SMCBENCH_THREADS", "0")) or None
    if threads:
        torch.set_num_threads(threads)


# --- steps ------------------------------------------------------------------------------------
def cmd_validate(a) -> int:
    """The checks the Snakefile runs at planning (typed settings, names, ranges); ``--show`` prints
    the config with every default filled in (what the jobs receive)."""
    from .config import ConfigError, iter_runs, load_config

    try:
        cfg = load_config(a.config)
    except ConfigError as e:
        return _fail(str(e))
    if a.show:
        import yaml

        part = cfg if a.show == "all" else cfg["datasets"].get(a.show) or cfg["models"].get(a.show)
        if part is None:
            return _fail(f"--show {a.show!r}: not a dataset or model of {a.config} (or use --show all)")
        print(yaml.safe_dump(part, sort_keys=False, default_flow_style=None, width=110), end="")
    n = sum(1 for _ in iter_runs(cfg))
    print(f"{a.config}: ok ({len(cfg['datasets'])} datasets, {len(cfg['methods'])} methods, {n} training runs)")
    return 0


def cmd_download(a) -> int:
    from .download import DownloadError, run

    try:
        rec = run(a.source, Path(a.out), Path(a.cache), a.repo_type)
    except DownloadError as e:
        return _fail(str(e))
    print(f"{a.name}: {rec['kind']} source at {rec['path']} ({len(rec['files'])} files checksummed)")
    return 0


def _local_source(a) -> str:
    from .download import DownloadError, local_source, resolve

    if a.source_json:
        return local_source(Path(a.source_json))
    try:
        return resolve(a.source, Path(a.cache), a.repo_type)["path"]
    except DownloadError as e:
        raise SystemExit(f"error: {e}")


def cmd_prepare(a) -> int:
    from .tasks import dataset_family, family_module
    from .tasks.base import write_json_atomic

    try:
        family = a.family or dataset_family(a.dataset)
        module = family_module(family)
    except ValueError as e:
        return _fail(str(e))
    settings = _json_arg(a.settings) if a.settings else {}
    a.repo_type = "dataset"
    source = _local_source(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        meta = module.prepare(a.dataset, source, out, settings,
                                             fold=None if a.fold in (None, "all") else int(a.fold))
    except (ValueError, FileNotFoundError) as e:
        return _fail(f"prepare {a.dataset}: {e}")
    meta = dict(meta or {})
    meta.setdefault("dataset", a.dataset)
    meta.setdefault("source", a.source or source)
    write_json_atomic(out / "meta.json", meta)
    print(f"prepared {a.dataset} into {out}: {meta.get('counts', '')}")
    return 0


def cmd_pretrained(a) -> int:
    from .tasks import family_module
    from .tasks.base import write_json_atomic

    entry = _json_arg(a.entry)
    a.repo_type = "model"
    if not a.source and not a.source_json:
        a.source = entry["source"]
    source = _local_source(a)
    _threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        info = family_module(entry["family"]).make_pretrained(a.model, entry, source, out)
    except (ValueError, FileNotFoundError, ImportError) as e:
        return _fail(f"pretrained {a.model}: {e}")
    if "path" not in info:
        return _fail(f"make_pretrained for {a.model} returned no 'path'")
    # Weights saved in the output folder are recorded as "." (the results folder can move);
    # other local paths as absolute paths.
    path = Path(info["path"])
    info = dict(info)
    info["path"] = "." if path.resolve() == out.resolve() else str(path.resolve())
    write_json_atomic(out / "pretrained.json", info)
    print(f"pretrained {a.model}: {info['path']}")
    return 0


def _spec(a, save_model: bool = False):
    from .config import config_hash
    from .train import RunSpec

    params = _json_arg(a.params)
    params["config_hash"] = config_hash(params)
    return RunSpec(params=params, data_dir=Path(a.data), pretrained_dir=Path(a.pretrained), out_dir=Path(a.out),
                   seed=a.seed, start_weights=Path(a.start_weights) if getattr(a, "start_weights", None) else None,
                   prev_mask=Path(a.prev_mask) if getattr(a, "prev_mask", None) else None,
                   teacher_weights=Path(a.teacher_weights) if getattr(a, "teacher_weights", None) else None,
                   save_model=save_model, log=_logger(a.log))


def cmd_mask(a) -> int:
    from .train import TrainingError, compute_before_mask

    _threads(a.threads)
    try:
        compute_before_mask(_spec(a))
    except (TrainingError, ValueError) as e:
        return _fail(str(e))
    return 0


def cmd_train(a) -> int:
    from .train import TrainingError, run_training

    _threads(a.threads)
    spec = _spec(a, save_model=a.save_model)
    try:
        run_training(spec)
    except (TrainingError, ValueError) as e:
        return _fail(str(e))
    return 0


def cmd_results(a) -> int:
    from .results import ResultsError, collect

    from .tasks.base import write_json_atomic

    metrics = [Path(p) for p in a.metrics]
    extras = _json_arg(a.extras) if a.extras else {}
    try:
        n, primary = collect(metrics, Path(a.out), extras)
    except ResultsError as e:
        return _fail(str(e))
    out_dir = Path(a.out).parent
    write_json_atomic(out_dir / "primary_metrics.json", primary)
    if a.config:
        write_json_atomic(out_dir / "config.json", _json_arg(a.config))
    print(f"{a.out}: {n} rows from {len(metrics)} runs")
    return 0


def cmd_analyze(argv: list[str]) -> int:
    from .analysis.cli import main as analysis_main

    return analysis_main(argv)


def cmd_demo(a) -> int:
    from .demo import run_demo

    return run_demo(cores=a.cores, configfile=a.configfile, targets=a.targets, extra=a.snakemake_args)


def cmd_serve(a) -> int:
    from .server import serve

    return serve(a.socket, preload=a.preload)


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="smcbench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("validate", help="check a config file (the same checks as planning)")
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--show", metavar="NAME", help="print a dataset's or model's entry (or 'all': the whole config) "
                   "with every default filled in")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("download", help="resolve a dataset/model source into a local, checksummed folder")
    p.add_argument("name")
    p.add_argument("--source", required=True, help="a JSON object {source, revision, sha256, files} (what the workflow passes), "
                   "or a plain source: owner/name@revision (Hub), a URL (#sha256=… pins it), a local path, 'synthetic'")
    p.add_argument("--out", required=True, help="source.json to write")
    p.add_argument("--cache", default="resources/cache")
    p.add_argument("--repo-type", default="dataset", choices=["dataset", "model"])
    p.set_defaults(fn=cmd_download)

    def add_source(p):
        g = p.add_mutually_exclusive_group(required=False)
        g.add_argument("--source", help="Hub id, URL, local path or 'synthetic'")
        g.add_argument("--source-json", help="source.json written by the download step")
        p.add_argument("--cache", default="resources/cache")

    p = sub.add_parser("prepare", help="write DIR/{train,validation,test}.jsonl + meta.json for a dataset")
    p.add_argument("dataset")
    add_source(p)
    p.add_argument("--family", help="task family (default: from the dataset name)")
    p.add_argument("--settings", help="the dataset's settings as JSON")
    p.add_argument("--fold", default=None, help="CV fold (arithmetic) or 'all'")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser("pretrained", help="materialize a pre-trained model (demo: pre-train a tiny one)")
    p.add_argument("model")
    p.add_argument("--entry", required=True, help="the model's config entry as JSON")
    add_source(p)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(fn=cmd_pretrained)

    for name, fn, helptext in (("mask", cmd_mask, "compute a before-training mask"),
                               ("train", cmd_train, "train one run (fine-tune + select on validation + test)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--params", required=True, help="the job's canonical JSON params")
        p.add_argument("--data", required=True)
        p.add_argument("--pretrained", required=True)
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--log", default=None)
        p.add_argument("--threads", type=int, default=None)
        if name == "train":
            p.add_argument("--start-weights", default=None)
            p.add_argument("--prev-mask", default=None,
                           help="the mask to start from (IMP: round k-1's; before/during methods: the shared "
                                "before-training mask; without it the job computes that mask itself, seeded)")
            p.add_argument("--teacher-weights", default=None,
                           help="dense fine-tune weights for methods that distill from it")
            p.add_argument("--save-model", action="store_true")
        p.set_defaults(fn=fn)

    p = sub.add_parser("results", help="collect run metrics into the tidy results table")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--extras", default=None, help="JSON object: run_dir -> extra-run name")
    p.add_argument("--config", default=None, help="the resolved config as JSON (written to config.json)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_results)

    p = sub.add_parser("demo", help="run the whole offline demo to its figures")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--configfile", default="workflow/configs/demo.yaml")
    p.add_argument("--targets", nargs="*", default=["all_figures"])
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="extra arguments for snakemake (after --)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("serve", help="a warm job server (torch pre-imported) that forks one child per job")
    p.add_argument("--socket", required=True)
    p.add_argument("--preload", nargs="*", default=None)
    p.set_defaults(fn=cmd_serve)

    sub.add_parser("analyze", help="figures and tables (see `smcbench analyze --help`)", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "analyze":
        return cmd_analyze(argv[1:])
    a = build_parser().parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
