"""Hostile configs: whatever file a user hands over (bytes that are not text, text that is not
YAML, YAML of any shape, or a good config with any field replaced, removed or joined by an
unknown one), ``load_config`` returns a config that later stages can key, or raises
``ConfigError`` naming the file; never another exception. The CLI turns every such error
into exit code 2 before any work starts."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from harness.cli import main
from harness.config import ConfigError, SweepConfig
from harness.config_file import MAX_VALUES, load_config
from harness.store import spec_key

GOOD: dict[str, Any] = {
    "name": "fuzz", "store": "store",
    "dataset": {"kind": "digits", "params": {}, "val_fraction": 0.2, "split_seed": 0},
    "generators": [{"name": "cvae", "kind": "cvae", "params": {"steps": 10}, "truncations": [0.5, 1.0]},
                   {"name": "real", "kind": "real"}],
    "classifier": {"recipe": "digits-small", "overrides": {"epochs": 1}, "num_workers": 0, "use_gpu": False,
                   "cpus_per_worker": 1, "resources_per_worker": {}},
    "seeds": [0, 1], "augmentation_ratios": [0.5],
    "sampler": {"num_actors": 1, "num_cpus": 1, "num_gpus": 0, "resources": {}, "batch_size": 64, "shard_size": 100},
    "metrics": {"extractors": ["domain"], "inception_weights": None, "dinov2_weights": None, "dinov2_architecture": {},
                "num_samples": 1000, "max_samples": 100, "seed": 0, "batch_size": 50, "num_gpus": 0, "num_actors": 1},
    "max_concurrent_trials": 2,
}


def field_paths(model: type[BaseModel], prefix: tuple = ()) -> Iterator[tuple]:
    """The path of every field of the schema, into nested models and the first list item."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        yield path
        listed = get_origin(info.annotation) is list
        inner = get_args(info.annotation)[0] if listed else info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from field_paths(inner, (*path, 0) if listed else path)


FIELDS = sorted(field_paths(SweepConfig), key=str)

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
           | st.floats() | st.text(max_size=30) | st.sampled_from(["", "real", "cvae", "digits", "x:y", "-1", ".inf"])
           | st.dates() | st.datetimes())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | st.integers(), inner, max_size=4), max_leaves=12)


def dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


@st.composite
def violated(draw: st.DrawFn) -> bytes:
    """The good config with one to three fields replaced by any value, removed, or joined by
    an unknown sibling."""
    doc = yaml.safe_load(dump(GOOD))
    for _ in range(draw(st.integers(1, 3))):
        *parents, last = draw(st.sampled_from(FIELDS))
        node = doc
        for part in parents:
            if not isinstance(node, dict | list) or (isinstance(node, list) and not node) or \
                    (isinstance(node, dict) and part not in node):
                break
            node = node[part]
        else:
            if isinstance(node, dict):
                change = draw(st.sampled_from(["replace", "remove", "unknown"]))
                if change == "replace":
                    node[last] = draw(values)
                elif change == "remove":
                    node.pop(last, None)
                else:
                    node[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return dump(doc)


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """The good config's YAML text with a slice cut out and random text put in its place."""
    text = dump(GOOD).decode()
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 20)))
    return (text[:start] + draw(st.text(max_size=10)) + text[end:]).encode("utf-8", "surrogatepass")


documents = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    values.map(dump),
    st.dictionaries(st.sampled_from(sorted(GOOD)) | st.text(max_size=8), values, max_size=6).map(dump),
    spliced(),
    violated(),
)

FUZZ = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def load(data: bytes) -> tuple[Path, SweepConfig | ConfigError]:
    """``data`` as a config file, loaded; the outcome is a config or a ConfigError, nothing else."""
    path = Path(tempfile.mkdtemp()) / "fuzz.yaml"
    path.write_bytes(data)
    try:
        return path, load_config(path)
    except ConfigError as err:
        return path, err


@FUZZ
@given(documents)
def test_any_file_gives_a_config_or_a_config_error(data: bytes) -> None:
    path, outcome = load(data)
    if isinstance(outcome, ConfigError):
        assert str(outcome).startswith(f"{path}: ")
    else:
        assert len(spec_key(outcome.model_dump())) == 16


@settings(FUZZ, max_examples=250)
@given(violated())
def test_any_field_given_any_value_gives_a_config_or_an_error_naming_the_field(data: bytes) -> None:
    path, outcome = load(data)
    if isinstance(outcome, ConfigError):
        assert str(outcome).startswith(f"{path}: invalid config\n  ")
    else:
        assert len(spec_key(outcome.model_dump())) == 16


def test_the_config_the_fuzzing_starts_from_is_valid() -> None:
    _, outcome = load(dump(GOOD))
    assert isinstance(outcome, SweepConfig) and [g.name for g in outcome.generators] == ["cvae", "real"]


ALIASES = "name: &n [*n]\n"
BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)) + "name: *i\n"


@pytest.mark.parametrize(("text", "expected"), [
    (b"\xff\xfename: x\n", "not UTF-8 text (byte 0: invalid start byte)"),
    (b"[" * 1000 + b"]" * 1000, "not valid YAML: RecursionError"),
    (b"name: !!int abc\n", "not valid YAML: ValueError: invalid literal for int()"),
    (b"name: !!bool maybe\n", "not valid YAML: KeyError: 'maybe'"),
    (b"name: !!timestamp soon\n", "not valid YAML: AttributeError"),
    (b"name: 2001-13-45\n", "not valid YAML: ValueError: month must be in 1..12"),
    (b"name: " + b"1" * 5000 + b"\n", "not valid YAML: ValueError: Exceeds the limit (4300 digits)"),
    (b"name: 0x" + b"f" * 2000 + b"\n", "an integer of 8000 bits; integers must fit in 4096 bits"),
    (ALIASES.encode(), f"the document expands to more than {MAX_VALUES} values"),
    (BOMB.encode(), f"the document expands to more than {MAX_VALUES} values"),
    (dump({**GOOD, "seeds": [-1]}), "seeds[0]: Input should be greater than or equal to 0 (given: -1)"),
    (dump({**GOOD, "seeds": [2**40]}), "seeds[0]: Input should be less than 4294967296"),
    (dump({**GOOD, "sampler": {"num_cpus": float("inf")}}), "sampler.num_cpus: Input should be a finite number"),
    (dump({**GOOD, "name": "x" * 100_000}), "name: String should have at most 64 characters (given: 'xxxxx"),
])
def test_what_the_fuzzing_found_is_a_config_error(text: bytes, expected: str) -> None:
    path, outcome = load(text)
    assert isinstance(outcome, ConfigError) and expected in str(outcome) and str(outcome).startswith(f"{path}: ")
    assert len(str(outcome)) < 2000


def test_a_date_in_params_is_kept_and_keyed() -> None:
    plugin = {"name": "p", "kind": "tests.plugin_generator:StripeGenerator",
              "params": {"since": datetime.date(2020, 1, 2)}}
    _, outcome = load(dump({**GOOD, "generators": [*GOOD["generators"], plugin]}))
    assert outcome.generators[-1].params == {"since": datetime.date(2020, 1, 2)} and spec_key(outcome.model_dump())


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_the_cli_exits_2_on_every_invalid_config(data: bytes) -> None:
    path, outcome = load(data)
    assume(isinstance(outcome, ConfigError))  # a valid config would start a sweep
    assert main(["sweep", str(path)]) == 2


def test_the_cli_names_the_file_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo.yaml"
    path.write_bytes(dump({**GOOD, "seeds": "zero"}))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: invalid config\n  seeds: Input should be a valid list (given: 'zero')")
