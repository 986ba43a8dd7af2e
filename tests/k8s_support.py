"""What the Kubernetes tests share: the repository's manifests as fresh objects, and edits of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tools import validate_k8s

REPO = Path(__file__).parents[1]


def load(rel: str) -> list[dict]:
    """The objects of the repository's YAML file ``rel``, sharing no sub-object (YAML aliases
    would otherwise make one edit change several places)."""
    return json.loads(json.dumps(validate_k8s.load_documents((REPO / rel).read_text())))


def edit(obj: dict, path: str, value: object = None, *, delete: bool = False) -> dict:
    """A copy of ``obj`` with the dotted ``path`` (list indexes as numbers) set or deleted."""
    out = copy.deepcopy(obj)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = out
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out
