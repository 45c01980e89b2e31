"""vramplan from Python: the same answers as the ``vramplan`` command's ``--json``.

    >>> import vramplan
    >>> e = vramplan.estimate(model="llama-3.1-8b-instruct", gpu="RTX 4090", context=8192,
    ...                       batch=4, engine="vllm")
    >>> e["fits"], e["max_concurrency"]

Every function takes the command's long flags as keyword arguments, with ``-`` written ``_``
(``gpu_memory_utilization=0.9`` is ``--gpu-memory-utilization 0.9``); ``True`` passes a switch,
``None`` or ``False`` leaves a flag out, and a list repeats it (``plan(model=["a", "b"])``). Each
returns the dict that ``vramplan <command> --json`` prints, or raises :class:`VramplanError` with
the command's one-line message.

Why a wrapper around the binary rather than a PyO3 extension: the wheel built by maturin
(``bindings = "bin"``) carries the same ``vramplan`` executable that ``cargo install`` builds, so
the module cannot disagree with the command: the flags are parsed, defaulted and validated by
the one parser the CLI and the web API share, and the dicts are the command's own JSON. An
extension would need a second entry point into each command's argument handling and a second
build (the CLI crate as a library, PyO3, abi3) in every CI run; a process start costs about a
millisecond against answers that take microseconds to seconds. The cost is one ``subprocess``
per call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from typing import Any, Dict, List, Optional, Sequence, Union

__all__ = [
    "VramplanError",
    "binary",
    "run",
    "estimate",
    "plan",
    "inspect",
    "fit",
    "models",
    "gpus",
]

FlagValue = Union[str, int, float, bool, None, Sequence[Union[str, int, float]]]


class VramplanError(ValueError):
    """The command refused its input (exit code 2) or failed (exit code 1).

    ``message`` is vramplan's one-line error without the ``error:`` prefix; ``exit_code`` is the
    command's exit code.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def binary() -> str:
    """The path of the ``vramplan`` executable this module runs.

    ``$VRAMPLAN_BIN`` if set; else the one the wheel installed beside this Python (its scripts
    folder, or the user scheme's for ``pip install --user``); else ``vramplan`` on ``PATH``.
    """
    given = os.environ.get("VRAMPLAN_BIN")
    if given:
        return given
    exe = "vramplan.exe" if os.name == "nt" else "vramplan"
    schemes = [None, f"{os.name}_user"]
    for scheme in schemes:
        try:
            folder = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        candidate = os.path.join(folder, exe)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    beside = os.path.join(os.path.dirname(sys.executable), exe)
    if os.path.isfile(beside):
        return beside
    found = shutil.which("vramplan")
    if found:
        return found
    raise VramplanError(
        "the vramplan executable is not installed beside this Python nor on PATH; "
        "reinstall the wheel (pip install vramplan) or set VRAMPLAN_BIN",
        1,
    )


def _flags(options: Dict[str, FlagValue]) -> List[str]:
    """Keyword arguments → long flags, in the order given."""
    out: List[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                out.append(f"{flag}={v}")
        else:
            # `--flag=value`: a value that starts with '-' stays a value, and vramplan answers
            # a negative number with its own one-line error.
            out.append(f"{flag}={value}")
    return out


def run(command: str, *args: str, **options: FlagValue) -> Any:
    """Runs ``vramplan <command> <args> <flags> --json`` and returns the parsed JSON."""
    argv = [binary(), command, *args, *_flags(options), "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        message = proc.stderr.strip()
        if message.startswith("error: "):
            message = message[len("error: "):]
        raise VramplanError(message or f"vramplan exited with {proc.returncode}", proc.returncode)
    return json.loads(proc.stdout)


def estimate(
    model: Optional[str] = None,
    *,
    gpu: Optional[str] = None,
    context: Optional[int] = None,
    batch: Optional[int] = None,
    engine: Optional[str] = None,
    quant: Optional[str] = None,
    kv_dtype: Optional[str] = None,
    gpus: Optional[int] = None,
    gpu_memory: Optional[str] = None,
    gpu_memory_utilization: Optional[float] = None,
    **flags: FlagValue,
) -> Dict[str, Any]:
    """Memory breakdown, verdict, max concurrency, max context and fewest GPUs for one
    configuration: ``vramplan estimate --json``.

    ``model`` is a catalogue id or alias as people type it, a path to a model file, folder or
    config.json, a Hugging Face repo ``"ORG/NAME[@REVISION][:GGUF_TAG]"`` (read from the Hub by
    its headers; ``offline=True``, ``refresh=True``, ``file="NAME.gguf"`` as the CLI's flags) or
    an ollama model ``"NAME:TAG"``; ``gpu`` a GPU as people write it (``"RTX 4090"``, ``"h100"``); ``engine`` one of
    ``generic`` (default), ``vllm``, ``llamacpp``, ``ollama``, ``sglang``. Any other flag of
    ``vramplan estimate --help`` is a keyword argument (``tp=2``, ``vllm_version="0.19"``,
    ``enforce_eager=True``). Byte figures are integers, per GPU.
    """
    return run(
        "estimate",
        model=model,
        gpu=gpu,
        context=context,
        batch=batch,
        engine=engine,
        quant=quant,
        kv_dtype=kv_dtype,
        gpus=gpus,
        gpu_memory=gpu_memory,
        gpu_memory_utilization=gpu_memory_utilization,
        **flags,
    )


def plan(
    model: Union[str, Sequence[str]],
    *,
    context: Optional[int] = None,
    concurrency: Optional[int] = None,
    gpu: Union[None, str, Sequence[str]] = None,
    engine: Optional[str] = None,
    max_gpus: Optional[int] = None,
    quant: Union[None, str, Sequence[str]] = None,
    kv_dtype: Union[None, str, Sequence[str]] = None,
    rate: Optional[float] = None,
    **flags: FlagValue,
) -> Dict[str, Any]:
    """The cheapest deployments that serve a workload: ``vramplan plan --json``.

    Returns ``{"plans": [...], "advice": [...], "no_plan": [...]}``; ``model``, ``gpu``,
    ``quant`` and ``kv_dtype`` take one name or a list (each a repeated flag).
    """
    return run(
        "plan",
        model=list(model) if not isinstance(model, str) else model,
        context=context,
        concurrency=concurrency,
        gpu=gpu if gpu is None or isinstance(gpu, str) else list(gpu),
        engine=engine,
        max_gpus=max_gpus,
        quant=quant if quant is None or isinstance(quant, str) else list(quant),
        kv_dtype=kv_dtype if kv_dtype is None or isinstance(kv_dtype, str) else list(kv_dtype),
        rate=rate,
        **flags,
    )


def inspect(path: str, *, tensors: bool = False, **flags: FlagValue) -> Dict[str, Any]:
    """What a model file or folder holds, from its headers only: ``vramplan inspect PATH --json``.

    ``path`` is a .safetensors or .gguf file, a checkpoint folder, a config.json, an HF repo id
    (the local cache, else the Hub), or an ollama model name (the local store, else the
    registry); ``tensors=True`` adds every tensor; ``offline``, ``refresh``, ``file`` and
    ``timeout`` are the CLI's flags.
    """
    return run("inspect", path, tensors=tensors, **flags)


def fit(
    *,
    gpu: Optional[str] = None,
    gpus: Optional[int] = None,
    host_memory: Optional[str] = None,
    context: Optional[int] = None,
    concurrency: Optional[int] = None,
    engine: Union[None, str, Sequence[str]] = None,
    family: Optional[str] = None,
    min_params: Optional[str] = None,
    max_params: Optional[str] = None,
    no_local: bool = False,
) -> Dict[str, Any]:
    """The models that run on this machine, or on ``gpus`` × ``gpu``: ``vramplan fit --json``.

    Without ``gpu`` the GPUs are found with nvidia-smi, rocm-smi or macOS. Returns
    ``{"hardware", "context", "concurrency", "models": [...], "notes"}``, each model with its
    best ``quant`` and ``kv_dtype``, ``max_context``, ``max_concurrency``, or a ``reason``.
    """
    return run(
        "fit",
        gpu=gpu,
        gpus=gpus,
        host_memory=host_memory,
        context=context,
        concurrency=concurrency,
        engine=engine if engine is None or isinstance(engine, str) else list(engine),
        family=family,
        min_params=min_params,
        max_params=max_params,
        no_local=no_local,
    )


def models(search: Optional[str] = None) -> List[Dict[str, Any]]:
    """The model catalogue, or the entries matching ``search``: ``vramplan models --json``."""
    return run("models", *([search] if search else []))


def gpus(search: Optional[str] = None) -> List[Dict[str, Any]]:
    """The GPU catalogue, or the entries matching ``search``: ``vramplan gpus --json``."""
    return run("gpus", *([search] if search else []))
