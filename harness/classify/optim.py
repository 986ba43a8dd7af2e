"""Optimiser parameter groups for the Goyal et al. (2017) recipe the CAS paper mirrors."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Groups for ``torch.optim``: weight decay on weights, none on batch-norm parameters or biases.

    Goyal et al. decay only the weights of convolutions and linear layers; decaying a batch-norm
    scale or a bias pulls it towards 0 without regularising the function. A parameter shared
    between modules is listed once, decayed only if no module holding it exempts it.
    """
    exempt: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, _BatchNorm) or name == "bias":
                exempt.add(id(param))
    params = list(model.parameters())  # each shared parameter once
    decay = [p for p in params if id(p) not in exempt]
    no_decay = [p for p in params if id(p) in exempt]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
