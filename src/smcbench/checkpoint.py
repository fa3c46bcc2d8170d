"""Preemption-safe training: resumable checkpoints, written atomically, without pickle.

A SLURM job can be killed at any moment: its time limit runs out, a higher-priority job preempts
it, a node fails. SLURM sends SIGTERM (or, with ``sbatch --signal=USR1@<s>``, SIGUSR1) some
seconds before the SIGKILL. The training loop uses a :class:`Checkpointer` like this::

    ckpt = Checkpointer(run_dir, every_minutes=10, fingerprint=params_hash)
    state = ckpt.load()                      # None on a fresh start
    if state is not None:
        model.load_state_dict(state["model"]); optimizer.load_state_dict(state["optimizer"])
        ...; start = state["step"] + 1
        restore_rng_state(state["rng"])      # last: building things above may draw numbers
    for step in range(start, total_steps):
        ...                                  # one optimizer step
        ckpt.maybe_save(step, lambda: {"model": ..., "optimizer": ..., "extra": {...}})
    ckpt.clear()                             # the run's outputs are written: drop the checkpoint

``maybe_save`` writes a checkpoint when ``every_minutes`` have passed since the last one, and
after a signal. The signal handlers only set a flag (nothing unsafe happens inside a handler);
after the signal-triggered save ``maybe_save`` raises :class:`Preempted`, a ``SystemExit`` with
exit code :data:`PREEMPTED_EXIT_CODE`, so the job ends at once with a distinct status and
Snakemake's ``retries`` resubmit it; the next attempt resumes from the checkpoint.

On disk (``<run_dir>/.checkpoint/``): ``tensors-<n>.safetensors`` holds every tensor (model,
optimizer moments, masks, torch RNG states) and ``state.json`` holds the structure (nested
dicts/lists/tuples, numbers, strings) with references into the tensor file. ``state.json`` is
replaced last, with ``os.replace``, so a crash at any point leaves either the previous complete
checkpoint or the new one, never a torn one. Loading uses ``safetensors`` and ``json`` only:
nothing is unpickled.

A checkpoint records a ``fingerprint``: what made it. The training loop passes a dict of parts
(the job's params and seed, the sha256 of every input file's contents — start weights, previous
mask, teacher, prepared data, pre-trained model — and the code version); a checkpoint whose
fingerprint differs is discarded with a log line naming the parts that changed, never resumed.
The fingerprint may be given as a callable: it is computed only when a checkpoint is saved or
found (hashing inputs costs time that a run without checkpoints never pays).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import threading
import weakref
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

#: exit status of a job that saved its checkpoint after SIGTERM/SIGUSR1 and stopped (EX_TEMPFAIL)
PREEMPTED_EXIT_CODE = 75
FORMAT = "smcbench-checkpoint/1"
ENV_MINUTES = "SMCBENCH_CHECKPOINT_MINUTES"
DEFAULT_MINUTES = 10.0
_STATE = "state.json"


class Preempted(SystemExit):
    """Raised by :meth:`Checkpointer.maybe_save` after a signal-triggered save.

    A ``SystemExit`` (not an ``Exception``): ``except Exception`` blocks do not swallow it, and
    uncaught it ends the process with :data:`PREEMPTED_EXIT_CODE` and no traceback.
    """

    def __init__(self, signal_name: str, path: Path, step: int):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.signal_name = signal_name
        self.path = path
        self.step = step

    def __str__(self) -> str:
        return (f"received {self.signal_name}: saved a checkpoint after step {self.step} in "
                f"{self.path} and stopped; the next attempt resumes from it")


# --- RNG state ----------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator training draws from: python, numpy, torch (+ CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set every generator back to ``state`` (from :func:`capture_rng_state`, after a round trip)."""
    random.setstate(_as_tuples(state["python"]))
    np.random.set_state(_as_tuples(state["numpy"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def _as_tuples(x: Any) -> Any:
    """random/numpy want tuples (not lists) all the way down; numpy arrays stay arrays."""
    if isinstance(x, (list, tuple)):
        return tuple(_as_tuples(v) for v in x)
    return x


# --- (de)serialization: nested python structure <-> JSON + flat tensor dict ---------------------
def _flatten(obj: Any, tensors: dict[str, torch.Tensor], seen: set[int]) -> Any:
    """JSON-able mirror of ``obj``; tensors (and numpy arrays) go into ``tensors`` by key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        t = obj.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        # safetensors refuses tensors sharing storage (tied embeddings, views): copy repeats.
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        tensors[key] = t
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj)).clone()
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _flatten(v, tensors, seen) for k, v in obj.items()}
        # int keys (optimizer state), or keys that would look like markers: keep them exactly
        return {"__items__": [[_flatten(k, tensors, seen), _flatten(v, tensors, seen)]
                              for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors, seen) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, seen) for v in obj]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}: {obj!r:.80} "
                    "(allowed: tensors, numpy arrays, dict/list/tuple, numbers, strings, None)")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    return obj


def _fsync_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` then rename onto ``path``: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _flag_setter(ref: "weakref.ref[Checkpointer]") -> Callable[[int, Any], None]:
    def on_signal(signum: int, frame: Any) -> None:
        # Only set a flag: the loop saves at its next step boundary, where the state is consistent.
        ckpt = ref()
        if ckpt is not None:
            ckpt._signal = signum

    return on_signal


def _restore_handlers(previous: dict[int, Any], ours: Callable) -> None:
    """Give back the handlers replaced by ``ours`` (unless someone replaced ours since)."""
    for sig, handler in previous.items():
        try:
            if signal.getsignal(sig) is ours:
                signal.signal(sig, handler)
        except ValueError:  # not the main thread (a finalizer run by the GC elsewhere)
            pass


# --- the checkpointer --------------------------------------------------------------------------
class Checkpointer:
    """Periodic and signal-triggered resumable checkpoints of one training run.

    Args:
        run_dir: the run's output folder; checkpoints live in ``run_dir/.checkpoint/``, which is
            not an output of any rule (Snakemake leaves it alone when it cleans a failed job).
        every_minutes: save when this many minutes have passed since the last save (or since the
            start); ``0`` or less saves only on a signal.
        enabled: ``False`` makes every method a no-op (no handlers, no files, ``load()`` is None).
        fingerprint: what the checkpoint belongs to: a string (e.g. the job's settings), a dict
            ``{part: digest}`` (so a discard can say which part changed), or a callable returning
            either (evaluated at the first save or load). A checkpoint with another fingerprint
            is discarded by :meth:`load`.
        signals: the signals that trigger save-and-stop (default SIGTERM and SIGUSR1).
        log: called with one line per event (save, resume, discard).
    """

    def __init__(self, run_dir: str | os.PathLike, every_minutes: float = 10.0, enabled: bool = True,
                 fingerprint: Any = "", signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1),
                 log: Callable[[str], None] = print):
        self.dir = Path(run_dir) / ".checkpoint"
        self.every_seconds = float(every_minutes) * 60.0
        self.enabled = enabled
        self._fingerprint_source = fingerprint
        self._fingerprint: tuple[str, dict[str, str]] | None = None
        self._precomputed: Any = None
        self._thread: threading.Thread | None = None
        self.log = log
        self._signal: int | None = None
        self._last_save = time.monotonic()
        previous: dict[int, Any] = {}
        # The handler holds the checkpointer weakly, and a finalizer gives the previous handlers
        # back when it is collected: a run that ends in an exception (no close()) does not leave
        # SIGTERM swallowed in a process that goes on (tests, notebooks).
        self._handler = _flag_setter(weakref.ref(self))
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in signals:
                previous[sig] = signal.signal(sig, self._handler)
        self._finalizer = weakref.finalize(self, _restore_handlers, previous, self._handler)

    def prepare_fingerprint(self) -> None:
        """Compute a callable fingerprint now, in a background thread (hashing large inputs
        releases the GIL), so a signal-triggered save within SLURM's grace period need not wait
        for it. :meth:`save` and :meth:`load` wait for the thread."""
        src = self._fingerprint_source
        if not self.enabled or not callable(src) or self._fingerprint is not None or self._thread is not None:
            return
        ref = weakref.ref(self)  # the thread must not keep a dead run's checkpointer alive

        def resolve() -> None:
            try:
                value = src()
            except Exception:  # noqa: BLE001 - save()/load() compute it again and raise there
                return
            ckpt = ref()
            if ckpt is not None:
                ckpt._precomputed = value
            del ckpt

        self._thread = threading.Thread(target=resolve, daemon=True)
        self._thread.start()

    def _resolve_fingerprint(self) -> tuple[str, dict[str, str]]:
        if self._fingerprint is None:
            if self._thread is not None:
                self._thread.join()
            src = self._precomputed if self._precomputed is not None else self._fingerprint_source
            if callable(src):
                src = src()
            if isinstance(src, dict):
                parts = {str(k): str(v) for k, v in src.items()}
                combined = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
            else:
                combined = hashlib.sha256(str(src).encode()).hexdigest()[:16] if src else ""
                parts = {"settings": combined}
            self._fingerprint = (combined, parts)
        return self._fingerprint

    @property
    def fingerprint(self) -> str:
        """The combined digest recorded in (and compared with) the checkpoint."""
        return self._resolve_fingerprint()[0]

    @classmethod
    def from_env(cls, run_dir: str | os.PathLike, fingerprint: Any = "",
                 log: Callable[[str], None] = print) -> "Checkpointer":
        """The training jobs' checkpointer, tuned by ``SMCBENCH_CHECKPOINT_MINUTES``: minutes between
        periodic saves (default 10), ``0`` to save only on SIGTERM/SIGUSR1, ``off`` to disable.

        An environment variable, not a job param: it never changes results, so changing it must
        not make Snakemake rerun jobs. SLURM jobs inherit it (the plugin submits ``--export=ALL``).
        """
        raw = os.environ.get(ENV_MINUTES, "").strip().lower()
        if raw in ("off", "no", "false", "none", "disabled"):
            return cls(run_dir, enabled=False, fingerprint=fingerprint, log=log)
        try:
            minutes = float(raw) if raw else DEFAULT_MINUTES
        except ValueError:
            raise ValueError(f"{ENV_MINUTES}={raw!r} is not a number of minutes "
                             "(use e.g. 10, 0 for signal-only, or off)") from None
        return cls(run_dir, every_minutes=minutes, fingerprint=fingerprint, log=log)

    # --- signals ---------------------------------------------------------------------------
    @property
    def signalled(self) -> bool:
        """True once SIGTERM/SIGUSR1 arrived (the next :meth:`maybe_save` saves and stops)."""
        return self._signal is not None

    def close(self) -> None:
        """Put the previous signal handlers back (idempotent)."""
        self._finalizer()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- saving ----------------------------------------------------------------------------
    def maybe_save(self, step: int, state_fn: Callable[[], dict[str, Any]]) -> bool:
        """Call once per step, after the optimizer step. Saves when due; returns True if it saved.

        ``state_fn()`` builds the state dict only when a save happens (it is not called otherwise,
        so the per-step cost is one clock read). After a signal it saves, then raises
        :class:`Preempted`.
        """
        if not self.enabled:
            return False
        if self._signal is not None:
            name = signal.Signals(self._signal).name
            self.save(step, state_fn())
            self.close()
            raise Preempted(name, self.dir, step)
        if self.every_seconds > 0 and time.monotonic() - self._last_save >= self.every_seconds:
            self.save(step, state_fn())
            return True
        return False

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``state`` (+ ``step``, RNG states, fingerprint) as the current checkpoint."""
        if not self.enabled:
            return self.dir
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        full = dict(state)
        full["step"] = int(step)
        full.setdefault("rng", capture_rng_state())
        tensors: dict[str, torch.Tensor] = {}
        structure = _flatten(full, tensors, set())
        from safetensors.torch import save_file

        tensor_name = f"tensors-{step}-{os.getpid()}.safetensors"
        _fsync_write(self.dir / tensor_name, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
        combined, parts = self._resolve_fingerprint()
        doc = {"format": FORMAT, "fingerprint": combined, "fingerprint_parts": parts, "step": int(step),
               "tensors": tensor_name, "state": structure, "saved_at": time.time()}
        _fsync_write(self.dir / _STATE, lambda p: p.write_text(json.dumps(doc), encoding="utf-8"))
        for old in self.dir.glob("tensors-*.safetensors"):
            if old.name != tensor_name:
                old.unlink(missing_ok=True)
        self._last_save = time.monotonic()
        self.log(f"checkpoint: saved step {step} to {self.dir} ({self._last_save - started:.1f}s)")
        return self.dir

    # --- loading ---------------------------------------------------------------------------
    def load(self, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The last checkpoint's state dict (``step``, ``rng`` and what ``state_fn`` returned),
        or None when there is none, it is unreadable, or it belongs to another fingerprint."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.dir / _STATE
        if not self.enabled or not path.exists():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            combined, parts = self._resolve_fingerprint()
            if doc.get("fingerprint") != combined:
                old = doc.get("fingerprint_parts") or {}
                changed = [k for k in parts if old.get(k) != parts[k]] + [k for k in old if k not in parts]
                self.log(f"checkpoint: discarding {self.dir}: it was made by another job "
                         f"(changed: {', '.join(changed) or 'fingerprint'}); starting over")
                shutil.rmtree(self.dir, ignore_errors=True)  # not clear(): keep the signal handlers
                return None
            tensors = load_file(str(self.dir / doc["tensors"]), device=str(device))
            state = _unflatten(doc["state"], tensors)
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
            self.log(f"checkpoint: ignoring unreadable checkpoint in {self.dir} ({e}); starting over")
            return None
        self.log(f"checkpoint: resuming from step {state['step']} ({self.dir})")
        return state

    def clear(self) -> None:
        """Delete the checkpoint (call once the run's outputs are written) and restore handlers."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
