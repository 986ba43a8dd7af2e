"""What a run's numbers depend on besides its config: code version, libraries, hardware, weights, time.

Collected once when a run is made and stored with it (a JSON-ready dict), so that rebuilding the report
later shows the run's provenance, not the provenance of the machine that rebuilt it. Nothing here names
the host or the user.
"""

from __future__ import annotations

import html
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.progress import format_seconds

DISTRIBUTION = "cas-harness"
LIBRARIES = ("torch", "torchvision", "ray", "numpy", "scipy", "matplotlib")
#: The sweep's stages in the order they run (a stored dict's keys come back sorted).
STAGES = ("prepare", "sample", "train", "features", "report")
OPTIONAL_LIBRARIES = ("diffusers", "timm", "transformers", "pytorch-pretrained-biggan")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(package_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(package_dir: Path | None = None) -> dict[str, Any] | None:
    """The commit of the checkout the harness package runs from and whether tracked files differ from it;
    None for an installed package, or one inside a git repository that does not track it."""
    package_dir = package_dir or Path(__file__).resolve().parents[1]
    if _git(package_dir, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = _git(package_dir, "rev-parse", "HEAD")
    changes = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    return None if commit is None else {"commit": commit, "modified": bool(changes)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """CPU model and count, the CPU kernels torch dispatches to here (AVX2, AVX512…: they round differently,
    and a short training run carries the difference into its accuracy), and the GPUs torch sees (model per
    device, CUDA version)."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "gpu_count": len(gpus), "gpus": gpus,
            "cuda": torch.version.cuda if gpus else None}


def stage_wall(seconds: Mapping[str, float], starts: Mapping[str, float]) -> float:
    """The wall-clock seconds from the first stage's start to the last one's end (stages may overlap)."""
    return max((starts.get(name, 0.0) + s for name, s in seconds.items()), default=0.0)


def collect_provenance(config_text: str, store_keys: Mapping[str, str], weights_checksums: Mapping[str, str | None],
                       stage_seconds: Mapping[str, float], seeds: Sequence[int] = (),
                       stage_starts: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The run's provenance as a JSON-ready dict.

    ``config_text``: the sweep config as given; ``store_keys``: what → store key (sample sets, real data,
    features); ``weights_checksums``: feature extractor or classifier → SHA-256 of its weights (None where
    random or unpinned); ``stage_seconds``: stage → wall-clock seconds; ``seeds``: training seeds;
    ``stage_starts``: stage → seconds after the sweep began that it started (stages may overlap).
    """
    libraries = {name: _version(name) for name in LIBRARIES}
    libraries |= {name: v for name in OPTIONAL_LIBRARIES if (v := _version(name)) is not None}
    return {"harness": {"version": _version(DISTRIBUTION), "git": git_commit()},
            "python": platform.python_version(), "platform": f"{platform.system()} {platform.release()}",
            "libraries": libraries, "hardware": hardware(), "seeds": list(seeds),
            "store_keys": dict(store_keys), "weights_sha256": dict(weights_checksums),
            "stage_seconds": {k: round(float(v), 2) for k, v in stage_seconds.items()},
            "stage_starts": {k: round(float(v), 2) for k, v in (stage_starts or {}).items()}, "config": config_text}


def _harness(prov: Mapping[str, Any]) -> str:
    h = prov["harness"]
    git = h.get("git")
    where = "not a git checkout" if git is None else git["commit"] + (" (modified)" if git["modified"] else "")
    return f"{h.get('version') or 'unknown version'}, {where}"


def _gpus(hw: Mapping[str, Any]) -> str:
    if not hw["gpu_count"]:
        return "none"
    models = {m: hw["gpus"].count(m) for m in hw["gpus"]}
    return ", ".join(f"{n} × {m}" for m, n in models.items()) + (f" (CUDA {hw['cuda']})" if hw.get("cuda") else "")


def _facts(prov: Mapping[str, Any]) -> list[tuple[str, str]]:
    hw = prov["hardware"]
    stages = dict(sorted(prov["stage_seconds"].items(),
                         key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else len(STAGES)))
    starts = prov.get("stage_starts") or {}
    total = stage_wall(stages, starts) if starts else sum(stages.values())
    return [("harness", _harness(prov)), ("python", f"{prov['python']} on {prov['platform']}"),
            ("libraries", ", ".join(f"{k} {v or 'not installed'}" for k, v in prov["libraries"].items())),
            ("CPU", f"{hw['cpu_count']} × {hw['cpu_model']}"
                    + (f" ({hw['cpu_kernels']} kernels)" if hw.get("cpu_kernels") else "")), ("GPU", _gpus(hw)),
            ("seeds", ", ".join(map(str, prov["seeds"])) or "–"),
            ("wall time", ", ".join(f"{k} {format_seconds(v)}" for k, v in stages.items())
             + (f" (total {format_seconds(total)})" if len(stages) > 1 else ""))]


def provenance_markdown(prov: Mapping[str, Any]) -> str:
    """A Markdown section: facts as a list, store keys and weights as tables, the config verbatim."""
    out = ["## Provenance", ""] + [f"- **{name}**: {value}" for name, value in _facts(prov)]
    for title, column, mapping in (("Store keys", "key", prov["store_keys"]),
                                   ("Weights", "SHA-256", prov["weights_sha256"])):
        if mapping:
            out += ["", f"| {title.lower()} | {column} |", "|---|---|"]
            out += [f"| {k} | `{v or 'not pinned'}` |" for k, v in mapping.items()]
    fence = "````" if "```" in prov["config"] else "```"
    out += ["", "Config:", "", f"{fence}yaml", prov["config"].rstrip("\n"), fence]
    return "\n".join(out) + "\n"


def provenance_html(prov: Mapping[str, Any]) -> str:
    """An HTML section (no scripts, no external resources): the same content as ``provenance_markdown``."""
    esc = html.escape
    facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _facts(prov))
    tables = ""
    for title, column, mapping in (("store keys", "key", prov["store_keys"]),
                                   ("weights", "SHA-256", prov["weights_sha256"])):
        if mapping:
            body = "".join(f"<tr><td>{esc(k)}</td><td><code>{esc(v or 'not pinned')}</code></td></tr>"
                           for k, v in mapping.items())
            tables += f"<table><tr><th>{title}</th><th>{column}</th></tr>{body}</table>"
    return (f'<section class="provenance"><h2>Provenance</h2><table>{facts}</table>{tables}'
            f"<details><summary>config</summary><pre>{esc(prov['config'])}</pre></details></section>")
