"""Fixed class orders: generators whose class index i always means one particular class.

BigGAN-deep, and ImageNet diffusion models such as DiT, number ImageNet's 1,000 classes in
the standard order: the WordNet ids (wnids) sorted, so index 0 is n01440764 (tench) and 999
is n15075141 (toilet tissue). A folder dataset sorts its class folders by name, so the two
agree when ImageNet's folders are named by wnid; a dataset whose classes are named or
ordered otherwise (human-readable names, another sort, a subset) would silently permute
every label, and CAS would measure the permutation. A registered kind declares its order
as ``class_order`` in the registry, a plugin as a ``class_order`` attribute of its class
or factory; :func:`check_class_order` compares it with the dataset's class names before
anything is sampled.

A dataset whose class names are its indices (``0``, ``1``, …: an npz dataset) carries no
names to compare; its labels are taken to be in the generator's order, as in ADM's
reference batches.

``imagenet_wnids.txt`` holds the 1,000 wnids in sorted order, as timm 1.0.31 ships them
(``timm/data/_info/imagenet_synsets.txt``, Apache-2.0; SHA-256 ``70002b0f…e183d15``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from harness.generators import GeneratorError, is_plugin, plugin_factory
from harness.registry import GENERATORS

if TYPE_CHECKING:
    from harness.config import GeneratorConfig

#: Each known order and the package file listing its class names, one per line, index 0 first.
CLASS_ORDERS = {"imagenet-wnid": "imagenet_wnids.txt"}


@functools.cache
def class_order(order: str) -> tuple[str, ...]:
    """The class names of a known order, index 0 first."""
    return tuple(Path(__file__).with_name(CLASS_ORDERS[order]).read_text(encoding="ascii").split())


def declared_class_order(spec: GeneratorConfig) -> str | None:
    """The class order a generator's kind (registry ``class_order``) or plugin (``class_order`` attribute) fixes."""
    if is_plugin(spec.kind):
        order = getattr(plugin_factory(spec), "class_order", None)
    else:
        order = GENERATORS.entry(spec.kind).info.get("class_order")
    if order is not None and order not in CLASS_ORDERS:
        raise GeneratorError(f"generator {spec.name!r}: class_order {order!r} is not a known order; "
                             f"known: {', '.join(CLASS_ORDERS)}")
    return order


def check_class_order(name: str, order: str, class_names: tuple[str, ...] | list[str]) -> None:
    """Refuse a dataset whose classes are not in the generator's fixed ``order``, naming the first mismatch."""
    expected = class_order(order)
    if list(class_names) == [str(i) for i in range(len(class_names))] and len(class_names) == len(expected):
        return
    if len(class_names) != len(expected):
        raise GeneratorError(f"generator {name!r} numbers {len(expected)} classes in the {order} order, but the "
                             f"dataset has {len(class_names)} classes")
    first = next((i for i, (a, b) in enumerate(zip(class_names, expected, strict=True)) if a != b), None)
    if first is not None:
        raise GeneratorError(f"generator {name!r} numbers its classes in the {order} order, but the dataset's "
                             f"class {first} is {class_names[first]!r} where that order has {expected[first]!r}; "
                             f"name the dataset's classes (a folder dataset's class folders) as that order does")
