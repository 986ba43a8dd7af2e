"""Issue 12, "everything checked before work": each mistake of the issue's table ends the
command with exit code 2 and one message naming the config file, the field, what was given
and what is allowed, before Ray starts; a config error costs well under two seconds of CPU
because Ray, torch and the Kubernetes client are imported only once the config passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.config import ConfigError
from harness.preflight import check_store
from tests.conftest import write_config

REPO = Path(__file__).resolve().parents[1]
BASE = """
name: t
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: g, kind: cvae, truncations: [0.5]}
classifier: {recipe: digits-small}
"""


def run_main(tmp_path: Path, text: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    """``harness sweep`` on ``text`` in this process: exit code, stderr, config path; Ray must not have started."""
    import ray

    path = write_config(tmp_path / "cfg.yaml", text)
    if "--store" not in extra and "store:" not in text:
        extra = (*extra, "--store", str(tmp_path / "store"))
    code = main(["sweep", str(path), *extra])
    assert not ray.is_initialized()
    return code, capsys.readouterr().err, path


def npz(path: Path, labels: list[int]) -> Path:
    images = np.zeros((len(labels), 8, 8, 1), dtype=np.uint8)
    np.savez(path, images, np.array(labels))
    return path


@pytest.mark.parametrize(("edit", "expected"), [
    (BASE.replace("truncations: [0.5]", "params: {step: 3}, truncations: [0.5]"),
     ["generators[1] (g)", "unknown params ['step']", "allowed: ['hidden', 'latent_dim', 'seed', 'steps']"]),
    (BASE.replace("kind: cvae, truncations: [0.5]", "kind: 'no_such_module:Gen'"),
     ["generators[1] (g).kind", "cannot import 'no_such_module'", "ModuleNotFoundError"]),
    (BASE.replace("kind: cvae, truncations: [0.5]", "kind: 'tests.plugin_generator:NoSuchClass'"),
     ["generators[1] (g).kind", "has no attribute 'NoSuchClass'"]),
    (BASE.replace("{recipe: digits-small}", "{recipe: digits-small, overrides: {epoch: 3}}"),
     ["classifier.overrides: unknown ['epoch']", "epochs"]),
])
def test_config_errors_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str,
                                  expected: list[str]) -> None:
    code, err, path = run_main(tmp_path, edit, capsys=capsys)
    assert code == 2 and err.startswith(f"error: {path}")
    for part in expected:
        assert part in err


def test_store_that_is_a_file_or_cannot_be_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "store-file"
    a_file.write_text("not a folder")
    code, err, path = run_main(tmp_path, BASE, "--store", str(a_file), capsys=capsys)
    assert code == 2
    assert err == f"error: {path}: --store: {str(a_file)!r} is a file, not a folder; give a folder (made if " \
                  f"missing) or an s3:// or gs:// URI\n"

    code, err, path = run_main(tmp_path, BASE, "--store", "/proc/x", capsys=capsys)
    assert code == 2 and err.startswith(f"error: {path}: --store: cannot make the folder '/proc/x' (ENOENT")
    assert "give a folder this user can write" in err

    code, err, path = run_main(tmp_path, f"store: {a_file}\n" + BASE, capsys=capsys)
    assert code == 2 and err.startswith(f"error: {path}: store: {str(a_file)!r} is a file")


def check_as_unprivileged(folder: str) -> str:
    """``check_store`` on ``folder`` as a user who may not write there; the error's message.

    Root writes anywhere, so as root the check runs in a forked child that drops to nobody.
    """
    if os.geteuid() != 0:
        with pytest.raises(ConfigError) as err:
            check_store(folder, "cfg.yaml: store")
        return str(err.value)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                check_store(folder, "cfg.yaml: store")
                message = "no error"
            except ConfigError as err:
                message = str(err)
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    return message


def test_unwritable_store_folder() -> None:
    base = tempfile.mkdtemp(prefix="cas-unwritable-")
    try:
        os.chmod(base, 0o755)
        folder = os.path.join(base, "store")
        os.mkdir(folder, 0o555)
        os.chmod(folder, 0o555)
        message = check_as_unprivileged(folder)
        assert message.startswith(f"cfg.yaml: store: cannot write to {folder!r} (EACCES: Permission denied)")
        assert os.listdir(folder) == []
    finally:
        os.chmod(os.path.join(base, "store"), 0o755)
        os.rmdir(os.path.join(base, "store"))
        os.rmdir(base)


def test_dataset_and_sample_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "imagenet"
    folder = BASE.replace("{kind: digits}", f"{{kind: folder, params: {{root: {missing}}}}}")
    code, err, path = run_main(tmp_path, folder, capsys=capsys)
    assert code == 2
    assert err == (f"error: {path}: dataset.params.root: {str(missing)!r} does not exist; expected a folder with "
                   f"train/ and val/, each of per-class subfolders\n")

    (missing / "train" / "cat").mkdir(parents=True)
    code, err, _ = run_main(tmp_path, folder, capsys=capsys)
    assert code == 2 and f"dataset.params.root: {str(missing)!r}: {missing / 'val'} does not exist" in err

    npz_data = BASE.replace("{kind: digits}", f"{{kind: npz, params: {{train: {tmp_path}/t.npz, "
                                              f"test: {tmp_path}/v.npz}}}}")
    code, err, path = run_main(tmp_path, npz_data, capsys=capsys)
    assert code == 2
    assert err.startswith(f"error: {path}: dataset.params.train: '{tmp_path}/t.npz' does not exist; expected an "
                          f".npz file with arr_0 = uint8 N×H×W×C images and arr_1 = integer labels")

    pool = npz(tmp_path / "pool.npz", [0, 1, 2, 3, 4])
    code, err, path = run_main(tmp_path, BASE.replace("kind: cvae, truncations: [0.5]",
                                                      f"kind: npz, params: {{path: {pool}}}"), capsys=capsys)
    assert code == 2
    assert err == (f"error: {path}: generators[1] (g).params.path: {pool} has no samples of classes "
                   f"[5, 6, 7, 8, 9]; the dataset has 10 classes and each needs samples\n")

    samples = tmp_path / "samples"
    for c in "0123456":
        (samples / c).mkdir(parents=True)
    code, err, path = run_main(tmp_path, BASE.replace("kind: cvae, truncations: [0.5]",
                                                      f"kind: folder, params: {{root: {samples}}}"), capsys=capsys)
    assert code == 2
    assert err == (f"error: {path}: generators[1] (g).params.root: {samples} has no folders for classes "
                   f"['7', '8', '9']; expected one per dataset class (10: 0, 1, 2, 3, 4 …)\n")


def test_a_config_error_imports_neither_ray_nor_torch(tmp_path: Path) -> None:
    """In a fresh interpreter, as a user runs it: no Ray, torch or Kubernetes client imported, which is
    what keeps a config error under two seconds (BENCHMARKS.md)."""
    path = write_config(tmp_path / "cfg.yaml", BASE.replace("digits-small}", "digits-small, overrides: {epoch: 3}}"))
    script = ("import json, sys\nfrom harness.cli import main\ncode = main(sys.argv[1:])\n"
              "print(json.dumps([code, sorted(m for m in ('ray', 'torch', 'kubernetes') if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", script, "sweep", str(path), "--store", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          check=False, timeout=120)
    assert json.loads(done.stdout) == [2, []]
    assert f"{path}: classifier.overrides: unknown ['epoch']" in done.stderr
