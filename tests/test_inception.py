"""Tests of the FID Inception: layout, preprocessing, agreement with pytorch-fid, weights handling.

Nothing is downloaded: networks use ``weights="random"`` (deterministic) or files
written here.
"""

import dataclasses

import numpy as np
import pytest
import pytorch_fid.inception
import torch
import torch.nn.functional as F

from harness.metrics import FeatureStats, InceptionExtractor, exact_float32, extract, inception_score
from harness.metrics import inception as inc
from harness.metrics.weights import sha256_of


@pytest.fixture(autouse=True)
def single_thread():
    """Run the Inception forwards on one intra-op thread.

    On a small shared machine, OpenMP barriers between two threads competing with
    other processes made batch-size-1 forwards over ten times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_net():
    return inc.fid_inception_v3("random")


@pytest.fixture(scope="module")
def smooth_images():
    """16 uint8 299x299 images: bilinear upsamplings of random 6x6 colour patterns."""
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(16, 3, 6, 6, generator=gen) * 255
    return inc.resize_bilinear_tf1(small, 299).round().clamp(0, 255).to(torch.uint8)


def pytorch_fid_network(monkeypatch, state_dict):
    """pytorch-fid's FID InceptionV3 (pool3 output, no resize/normalise) holding ``state_dict``."""
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", lambda *a, **k: state_dict)
    return pytorch_fid.inception.InceptionV3([3], resize_input=False, normalize_input=False).eval()


def torch_fidelity_isc(logits, splits=10, shuffle=True, rng_seed=2020):
    """torch-fidelity's ``isc_features_to_metric`` formula (v0.3/0.4), restated as the reference."""
    feature = torch.as_tensor(logits)
    n = len(feature)
    if shuffle:
        feature = feature[np.random.RandomState(rng_seed).permutation(n)]
    feature = feature.double()
    p, log_p = feature.softmax(dim=1), feature.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        p_chunk = p[i * n // splits : (i + 1) * n // splits]
        log_p_chunk = log_p[i * n // splits : (i + 1) * n // splits]
        q_chunk = p_chunk.mean(dim=0, keepdim=True)
        scores.append((p_chunk * (log_p_chunk - q_chunk.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def test_tf1_resize_analytic_cases():
    row = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(1, 1, 1, 4)
    up = inc.resize_bilinear_tf1(row, (1, 8)).flatten().tolist()
    assert up == [0, 5, 10, 15, 20, 25, 30, 30]
    half_pixel = F.interpolate(row, size=(1, 8), mode="bilinear", align_corners=False)
    assert half_pixel.flatten().tolist()[:2] == [0, 2.5]
    down = inc.resize_bilinear_tf1(torch.arange(8.0).view(1, 1, 1, 8), (1, 4))
    assert down.flatten().tolist() == [0, 2, 4, 6]
    x = torch.rand(2, 3, 299, 299)
    assert torch.equal(inc.resize_bilinear_tf1(x, 299), x)


def test_tf1_resize_matches_loop_reference():
    x = torch.rand(1, 1, 5, 7, generator=torch.Generator().manual_seed(1)) * 255
    out_h, out_w = 12, 9
    img = x[0, 0].numpy()
    expected = np.zeros((out_h, out_w), np.float32)
    scale_y, scale_x = np.float32(5 / out_h), np.float32(7 / out_w)
    for i in range(out_h):
        y = np.float32(i) * scale_y
        y0, y1 = int(np.floor(y)), min(int(np.ceil(y)), 4)
        for j in range(out_w):
            xs = np.float32(j) * scale_x
            x0, x1 = int(np.floor(xs)), min(int(np.ceil(xs)), 6)
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * (xs - x0)
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * (xs - x0)
            expected[i, j] = top + (bottom - top) * (y - y0)
    np.testing.assert_allclose(inc.resize_bilinear_tf1(x, (out_h, out_w))[0, 0].numpy(), expected, rtol=1e-6)


def test_preprocess_convention():
    grey = torch.zeros(2, 1, 299, 299, dtype=torch.uint8)
    grey[..., 0, :3] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    x = inc.preprocess(grey)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert x[0, :, 0, :3].tolist() == [[-1.0, 0.0, 127 / 128]] * 3
    assert inc.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)).shape == (1, 3, 299, 299)
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        inc.preprocess(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        inc.preprocess(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))


def test_state_dict_layout_matches_pytorch_fid(monkeypatch, random_net):
    theirs = pytorch_fid_network(monkeypatch, random_net.state_dict())
    inner = pytorch_fid.inception.fid_inception_v3()
    ours = {k: v.shape for k, v in random_net.state_dict().items()}
    assert ours == {k: v.shape for k, v in inner.state_dict().items()}
    assert sum(1 for k in ours if k.endswith("num_batches_tracked")) == 94
    assert len(theirs.blocks) == 4


def test_random_weights_are_deterministic(random_net):
    again = inc.fid_inception_v3("random")
    for (name, a), b in zip(random_net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not random_net.training
    assert not any(p.requires_grad for p in random_net.parameters())


def test_network_rejects_wrong_input(random_net):
    with pytest.raises(ValueError, match=r"expects a \(N, 3, 299, 299\) batch, got shape \(1, 3, 64, 64\)"):
        random_net(torch.zeros(1, 3, 64, 64))


@pytest.mark.slow
def test_features_and_logits_match_pytorch_fid(monkeypatch, random_net, smooth_images):
    theirs = pytorch_fid_network(monkeypatch, random_net.state_dict())
    x = inc.preprocess(smooth_images[:8])
    with torch.inference_mode():
        pool3, logits = random_net(x)
        their_pool3 = theirs(x)[0].flatten(1)
    assert pool3.shape == (8, 2048) and logits.shape == (8, 1008)
    assert (pool3 - their_pool3).abs().max().item() <= 1e-4
    assert pool3.std(dim=0).mean().item() > 1e-2
    their_logits = their_pool3 @ random_net.fc.weight.T
    assert (logits - their_logits).abs().max().item() <= 1e-4

    ours = inception_score(logits, splits=2)
    assert ours == pytest.approx(torch_fidelity_isc(logits, splits=2, shuffle=False), rel=1e-6)
    assert ours[0] > 1.001


def test_inception_score_matches_torch_fidelity_formula():
    logits = torch.randn(1000, 1008, generator=torch.Generator().manual_seed(2)) * 4
    assert inception_score(logits) == pytest.approx(torch_fidelity_isc(logits, shuffle=False), rel=1e-6)
    permutation = np.random.RandomState(2020).permutation(1000)
    assert inception_score(logits[permutation]) == pytest.approx(torch_fidelity_isc(logits), rel=1e-6)


@pytest.mark.slow
def test_extraction_is_batch_size_independent(smooth_images):
    """Batch sizes 64 (one batch of all 16 images), 7 (a ragged last batch) and 1."""
    extractor = InceptionExtractor("random")
    runs = {bs: extract(smooth_images, extractor, batch_size=bs) for bs in (64, 7, 1)}
    features, logits = runs[64]["features"], runs[64]["logits"]
    assert features.shape == (16, 2048) and logits.shape == (16, 1008)
    fid = FeatureStats.from_features(features[:8]).fid(FeatureStats.from_features(features[8:]))
    assert fid > 1e-3
    for bs in (7, 1):
        other_features, other_logits = runs[bs]["features"], runs[bs]["logits"]
        assert np.abs(other_features - features).max() <= 1e-5 * np.abs(features).max()
        assert np.abs(other_logits - logits).max() <= 1e-5 * np.abs(logits).max()
        other_fid = FeatureStats.from_features(other_features[:8]).fid(
            FeatureStats.from_features(other_features[8:])
        )
        assert other_fid == pytest.approx(fid, rel=1e-5)


def test_extractor_constants():
    assert InceptionExtractor.name == inc.FEATURE_EXTRACTOR == "fid-inception-v3-tf-2015-12-05"
    assert "TF1 bilinear" in InceptionExtractor.preprocessing and "(x - 128) / 128" in inc.PREPROCESSING
    assert inc.WEIGHTS.sha256.startswith(inc.WEIGHTS.filename.rsplit("-", 1)[1].removesuffix(".pth"))
    assert InceptionExtractor.provides == ("features", "logits")
    assert InceptionExtractor.weights_sha256 == inc.WEIGHTS.sha256


def test_exact_float32_scopes_tf32_switches():
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        switches = [(torch.backends.cudnn.conv, "fp32_precision"), (torch.backends.cuda.matmul, "fp32_precision")]
        exact = "ieee"
    else:
        switches = [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]
        exact = False
    before = [getattr(obj, name) for obj, name in switches]
    with pytest.raises(RuntimeError, match="inside"):
        with exact_float32():
            assert [getattr(obj, name) for obj, name in switches] == [exact, exact]
            raise RuntimeError("inside")
    assert [getattr(obj, name) for obj, name in switches] == before


@pytest.fixture(scope="module")
def random_weights_file(tmp_path_factory, random_net):
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(random_net.state_dict(), path)
    return path


def trust(monkeypatch, path):
    """Pin the Inception weights to the file at ``path`` for this test."""
    monkeypatch.setattr(inc, "WEIGHTS", dataclasses.replace(inc.WEIGHTS, sha256=sha256_of(path)))


def test_weights_file_with_wrong_checksum_is_rejected(monkeypatch, tmp_path, random_weights_file):
    monkeypatch.delenv(inc.WEIGHTS.env, raising=False)
    with pytest.raises(ValueError, match=f"random_inception.pth has SHA-256 .* expected {inc.WEIGHTS.sha256}"):
        inc.fid_inception_v3(random_weights_file)
    monkeypatch.setenv(inc.WEIGHTS.env, str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match=r"Inception weights .*absent.pth \(from the \$CAS_INCEPTION_WEIGHTS"):
        inc.fid_inception_v3()
    monkeypatch.delenv(inc.WEIGHTS.env)
    cached = tmp_path / inc.WEIGHTS.filename
    cached.write_bytes(b"truncated download")
    with pytest.raises(ValueError, match="delete or replace the file"):
        inc.fid_inception_v3(cache_dir=tmp_path)


def test_weights_file_with_matching_checksum_loads(monkeypatch, tmp_path, random_net, random_weights_file):
    trust(monkeypatch, random_weights_file)
    monkeypatch.setenv(inc.WEIGHTS.env, str(random_weights_file))
    loaded = inc.fid_inception_v3()
    for (name, a), b in zip(random_net.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    monkeypatch.delenv(inc.WEIGHTS.env)
    cached = tmp_path / inc.WEIGHTS.filename
    cached.write_bytes(random_weights_file.read_bytes())
    assert torch.equal(inc.fid_inception_v3(cache_dir=tmp_path).fc.weight, random_net.fc.weight)


def test_download_into_cache_is_verified(monkeypatch, tmp_path, random_net, random_weights_file):
    """The download path, fed from a file:// URL instead of the network."""
    monkeypatch.delenv(inc.WEIGHTS.env, raising=False)
    monkeypatch.setattr(inc, "WEIGHTS", dataclasses.replace(inc.WEIGHTS, url=random_weights_file.as_uri()))
    with pytest.raises(ValueError, match="has SHA-256"):
        inc.fid_inception_v3(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / inc.WEIGHTS.filename).exists()
    trust(monkeypatch, random_weights_file)
    net = inc.fid_inception_v3(cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / inc.WEIGHTS.filename).is_file()
    assert torch.equal(net.fc.weight, random_net.fc.weight)
    monkeypatch.setattr(inc, "WEIGHTS", dataclasses.replace(inc.WEIGHTS, url=(tmp_path / "missing.pth").as_uri()))
    with pytest.raises(OSError, match=r"on an offline machine set \$CAS_INCEPTION_WEIGHTS"):
        inc.fid_inception_v3(cache_dir=tmp_path / "elsewhere")


def test_malformed_weights_files_are_rejected(monkeypatch, tmp_path, random_net):
    def write_and_trust(name, payload):
        path = tmp_path / name
        if isinstance(payload, bytes):
            path.write_bytes(payload)
        else:
            torch.save(payload, path)
        trust(monkeypatch, path)
        return path

    with pytest.raises(ValueError, match="garbage.pth is not a loadable PyTorch file"):
        inc.fid_inception_v3(write_and_trust("garbage.pth", b"not a checkpoint"))
    state = {k: v for k, v in random_net.state_dict().items() if not k.startswith("fc.")}
    with pytest.raises(ValueError, match=r"no_fc.pth does not have the FID Inception layout: missing keys \['fc"):
        inc.fid_inception_v3(write_and_trust("no_fc.pth", state))
    state = {k: v for k, v in random_net.state_dict().items() if not k.endswith("num_batches_tracked")}
    loaded = inc.fid_inception_v3(write_and_trust("no_counters.pth", state))
    assert torch.equal(loaded.Mixed_7c.branch_pool.conv.weight, random_net.Mixed_7c.branch_pool.conv.weight)
