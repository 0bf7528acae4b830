"""Data loading: official batches, archives, image folders, the cache, splits and normalisation."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import time

import numpy as np
import pytest
import torch
from datagen import archive_of, image_folder, official_batches
from PIL import Image
from torchvision import transforms

from experiments import data as D
from experiments.splits import channel_stats, make_splits, split_indices


def test_official_batches_content_order_and_labels(tmp_path):
    written = official_batches(tmp_path / "cifar-10-batches-py")
    raw = D.load_raw(tmp_path, ("airplane", "bird"), verify_md5=False, cache_dir=tmp_path / "cache")
    expected_x, expected_y = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)]:  # batches in order, rows in file order
        data, labels = written[name]
        for row, label in zip(data, labels):
            if label in (0, 2):  # airplane, bird
                expected_x.append(row)
                expected_y.append(0 if label == 0 else 1)
    np.testing.assert_array_equal(raw.x_train, np.array(expected_x))
    np.testing.assert_array_equal(raw.y_train, expected_y)
    test_data, test_labels = written["test_batch"]
    keep = np.isin(test_labels, [0, 2])
    np.testing.assert_array_equal(raw.x_test, test_data[keep])
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int64


def test_class_order_sets_the_labels(tmp_path):
    written = official_batches(tmp_path / "cifar-10-batches-py")
    raw = D.load_raw(tmp_path, ("bird", "airplane", "ship"), verify_md5=False, cache_dir=tmp_path / "cache")
    labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
    mapping = {2: 0, 0: 1, 8: 2}
    np.testing.assert_array_equal(raw.y_train, [mapping[v] for v in labels if v in mapping])


def test_md5_mismatch_names_the_file(tmp_path):
    official_batches(tmp_path / "cifar-10-batches-py")
    with pytest.raises(D.DataError, match=r"data_batch_1 fails its md5 check \(expected c99cafc1"):
        D.load_raw(tmp_path, cache_dir=tmp_path / "cache")


def test_official_row_layout_is_totensor_flatten(tmp_path):
    """A channel-major official row equals torch.flatten(ToTensor()(image)) * 255 of the same picture."""
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = (torch.flatten(transforms.ToTensor()(Image.fromarray(img))) * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(img.transpose(2, 0, 1).reshape(-1), expected)
    Image.fromarray(img).save(tmp_path / "x.png")
    np.testing.assert_array_equal(D._decode_image(tmp_path / "x.png"), expected)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_tampered_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Boom(), b"labels": []}, protocol=2))
    with pytest.raises(D.DataError, match=r"data_batch_1 is not a valid CIFAR-10 python batch \(it asks for posix.system"):
        D.read_batch(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_batch_is_named(tmp_path):
    official_batches(tmp_path / "b")
    (tmp_path / "b" / "data_batch_3").write_bytes((tmp_path / "b" / "data_batch_3").read_bytes()[:100])
    with pytest.raises(D.DataError, match="data_batch_3 is not a valid"):
        D.load_official(tmp_path / "b", ("airplane", "bird"), verify_md5=False)


def test_archive_is_extracted_and_loaded(tmp_path):
    official_batches(tmp_path / "src")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive_of(tmp_path / "src", data_dir / D.ARCHIVE)
    raw = D.load_raw(data_dir, verify_md5=False, cache_dir=tmp_path / "cache")
    assert raw.x_train.shape[1] == 3072 and "official batches" in raw.source
    with pytest.raises(D.DataError, match="cifar-10-python.tar.gz fails its md5 check"):
        D.load_raw(data_dir, cache_dir=tmp_path / "cache2")


@pytest.mark.parametrize("kind", ["traversal", "symlink", "absolute"])
def test_archive_members_cannot_escape(tmp_path, kind):
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        if kind == "traversal":
            tar.add(payload, arcname="../escaped")
        elif kind == "absolute":
            info = tarfile.TarInfo(str(tmp_path / "abs-escaped"))  # TarInfo keeps the leading "/"; tar.add strips it
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        else:
            link = tarfile.TarInfo("cifar-10-batches-py/link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    target = tmp_path / "target"
    with pytest.raises(D.DataError, match="refusing to extract"):
        D.extract_archive(archive, target, verify_md5=False)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs-escaped").exists()
    assert not (target / "cifar-10-batches-py" / "link").exists()


def test_image_folder_loader(tmp_path):
    written = image_folder(tmp_path, n_train=5, n_test=3)
    raw = D.load_raw(tmp_path, ("bird", "airplane"), cache_dir=tmp_path / "cache")
    assert raw.x_train.shape == (10, 3072) and raw.x_test.shape == (6, 3072)
    np.testing.assert_array_equal(raw.y_train, [0] * 5 + [1] * 5)  # classes in the order asked for
    np.testing.assert_array_equal(raw.x_train[0], written["train"]["bird"][0].transpose(2, 0, 1).reshape(-1))
    np.testing.assert_array_equal(raw.x_test[3], written["test"]["airplane"][0].transpose(2, 0, 1).reshape(-1))


def test_image_folder_errors_name_the_problem(tmp_path):
    image_folder(tmp_path, n_train=3, n_test=2)
    with pytest.raises(D.DataError, match=r"classes \['cat'\] not found .* it has \['airplane', 'bird'\]"):
        D.load_raw(tmp_path, ("airplane", "cat"), cache_dir=tmp_path / "c1")
    (tmp_path / "train" / "bird" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(D.DataError, match=r"0001.png cannot be decoded"):
        D.load_raw(tmp_path, cache_dir=tmp_path / "c2")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "train" / "bird" / "0001.png")
    with pytest.raises(D.DataError, match=r"0001.png is 16x16 pixels"):
        D.load_raw(tmp_path, cache_dir=tmp_path / "c3")


def test_empty_class_folder(tmp_path):
    image_folder(tmp_path, n_train=3, n_test=2)
    for f in (tmp_path / "test" / "bird").iterdir():
        f.unlink()
    with pytest.raises(D.DataError, match="test.*bird holds no images"):
        D.load_raw(tmp_path, cache_dir=tmp_path / "c")


def test_nothing_found_lists_where_it_looked(tmp_path):
    with pytest.raises(D.DataError) as info:
        D.load_raw(tmp_path / "nowhere", cache_dir=tmp_path / "c")
    message = str(info.value)
    for expected in ("cifar-10-batches-py", "cifar-10-python.tar.gz", "train/<class>", "--download"):
        assert expected in message


def test_unknown_official_class(tmp_path):
    official_batches(tmp_path / "cifar-10-batches-py")
    with pytest.raises(D.DataError, match="unknown CIFAR-10 classes"):
        D.load_raw(tmp_path, ("airplane", "plane"), verify_md5=False, cache_dir=tmp_path / "c")


def test_cache_is_used_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    image_folder(tmp_path / "d", n_train=4, n_test=2)
    first = D.load_raw(tmp_path / "d", cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("cifar-*.npz"))) == 1

    def no_decoding(path):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(D, "_decode_image", no_decoding)
    again = D.load_raw(tmp_path / "d", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert first.fingerprint == again.fingerprint
    monkeypatch.undo()
    time.sleep(0.01)
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tmp_path / "d" / "train" / "airplane" / "0000.png")
    changed = D.load_raw(tmp_path / "d", cache_dir=tmp_path / "c")
    assert changed.fingerprint != first.fingerprint and changed.x_train[0, 0] == 7


def test_split_is_seeded_and_disjoint():
    a_train, a_val = split_indices(1000, 0.1, 265)
    b_train, b_val = split_indices(1000, 0.1, 265)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_val) == 100 and len(set(a_train) | set(a_val)) == 1000
    assert not np.array_equal(split_indices(1000, 0.1, 1)[1], a_val)


def test_normalisation_uses_training_statistics_only(tmp_path):
    image_folder(tmp_path, n_train=30, n_test=10)
    raw = D.load_raw(tmp_path, cache_dir=tmp_path / "c")
    splits = make_splits(raw, 0.2, 265)
    mean, std = channel_stats(raw.x_train[splits.train_index])
    np.testing.assert_array_equal(splits.mean, mean)
    np.testing.assert_array_equal(splits.std, std)
    all_mean, _ = channel_stats(np.concatenate([raw.x_train, raw.x_test]))
    assert not np.allclose(all_mean, mean)  # statistics over everything would differ: no leakage
    planes = splits.x_train.reshape(len(splits.x_train), 3, -1)
    np.testing.assert_allclose(planes.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(planes.std(axis=(0, 2)), 1, atol=1e-12)
    x_test, _ = splits.test.open()
    expected = (raw.x_test.reshape(-1, 3, 1024) / 255.0 - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(x_test, expected.reshape(len(x_test), -1), rtol=1e-14)
    with pytest.raises(RuntimeError, match="already used once"):
        splits.test.open()


def test_empty_validation_split_is_an_error(tmp_path):
    image_folder(tmp_path, n_train=2, n_test=2)
    raw = D.load_raw(tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(D.DataError, match="validation split has no images"):
        make_splits(raw, 0.01, 265)
