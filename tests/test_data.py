"""Datasets: the digits writer, the folder layout, bad input, corrupt files."""
import collections
import os
import pathlib
import subprocess
import sys

import pytest
from PIL import Image

from mae import data
from mae.errors import DataError

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "digits"
    message = data.write_digits(out, input_size=16, seed=0)
    assert message.startswith("wrote 1797 digits images")
    return out


def _counts(root, split):
    return {c.name: len(list(c.glob("*.png"))) for c in sorted((root / split).iterdir())}


def test_digits_counts_and_stratification(digits):
    train, val = _counts(digits, "train"), _counts(digits, "validation")
    assert sorted(train) == sorted(val) == [str(i) for i in range(10)]
    assert sum(train.values()) == 1437 and sum(val.values()) == 360
    for cls in train:  # each class split 80/20 (within one image)
        total = train[cls] + val[cls]
        assert abs(val[cls] - 0.2 * total) <= 1, cls
    img = Image.open(next((digits / "train" / "3").glob("*.png")))
    assert img.mode == "RGB" and img.size == (16, 16)
    # no image in both splits
    names = lambda s: {p.name for p in (digits / s).rglob("*.png")}  # noqa: E731
    assert not names("train") & names("validation")


def test_digits_idempotent_and_conflicts(digits):
    before = {p: p.stat().st_mtime_ns for p in digits.rglob("*.png")}
    assert "nothing to do" in data.write_digits(digits, input_size=16, seed=0)
    assert {p: p.stat().st_mtime_ns for p in digits.rglob("*.png")} == before
    with pytest.raises(DataError, match="input_size 16"):
        data.write_digits(digits, input_size=32, seed=0)


def test_digits_refuses_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a complete digits dataset"):
        data.write_digits(tmp_path / "x")
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_digits_cli_same_split_for_same_seed(digits, tmp_path, capsys):
    assert data.main(["digits", "--out", str(tmp_path / "d2"), "--input_size", "16", "--seed", "0"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    for split in data.SPLITS:
        a = sorted(p.relative_to(digits) for p in (digits / split).rglob("*.png"))
        b = sorted(p.relative_to(tmp_path / "d2") for p in (tmp_path / "d2" / split).rglob("*.png"))
        assert a == b


def test_folder_dataset_with_pretrain_transform(digits):
    ds = data.build_dataset(digits, "validation", data.pretrain_transform(16))
    assert len(ds) == 360 and ds.classes == [str(i) for i in range(10)]
    img, target = ds[0]
    assert tuple(img.shape) == (3, 16, 16) and target == 0
    assert collections.Counter(ds.targets)[0] == _counts(digits, "validation")["0"]


def test_generated_dataset_is_deterministic():
    ds = data.GeneratedDataset(8, 16, num_classes=4, seed=1)
    a, ta = ds[5]
    b, tb = ds[5]
    assert a.shape == (3, 16, 16) and (a == b).all() and ta == tb == 1
    assert not (ds[4][0] == a).all()


def _tiny_layout(root, classes=("a", "b"), per_class=3):
    for cls in classes:
        (root / "train" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (i * 40, 10, 200)).save(root / "train" / cls / f"{i}.png")
    return root


def test_missing_path_and_split(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.build_dataset(tmp_path / "nope", "train")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="train not found"):
        data.build_dataset(tmp_path / "d", "train")
    (tmp_path / "d" / "train").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        data.build_dataset(tmp_path / "d", "train")


def test_empty_class_folder(tmp_path):
    root = _tiny_layout(tmp_path / "d")
    (root / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/c has no image files"):
        data.build_dataset(root, "train")


def test_corrupt_files_skipped_with_count(tmp_path, capsys):
    root = _tiny_layout(tmp_path / "d")
    (root / "train" / "a" / "bad1.png").write_bytes(b"not an image at all")
    (root / "train" / "b" / "bad2.jpg").write_bytes(b"")
    ds = data.build_dataset(root, "train", data.pretrain_transform(8))
    err = capsys.readouterr().err
    assert "skipped 2 corrupt image file(s)" in err and err.count("\n") == 1
    assert len(ds) == 6 and len(ds.skipped) == 2


def test_truncated_file_replaced_at_load(tmp_path, capsys):
    root = _tiny_layout(tmp_path / "d", per_class=2)
    good = root / "train" / "a" / "0.png"
    big = Image.effect_noise((64, 64), 50).convert("RGB")
    big.save(good)
    raw = good.read_bytes()
    good.write_bytes(raw[: len(raw) // 2])  # header fine, pixels cut off
    ds = data.build_dataset(root, "train", data.pretrain_transform(8))
    assert len(ds) == 4  # the header check passes
    img, target = ds[0]  # falls back to the next sample
    assert tuple(img.shape) == (3, 8, 8) and target == 0
    assert ds.load_failures == 1 and "(1 so far" in capsys.readouterr().err


def test_pretrain_cli_reports_empty_class_in_one_line(tmp_path):
    root = _tiny_layout(tmp_path / "d")
    (root / "train" / "zz").mkdir()
    proc = subprocess.run([sys.executable, "-m", "mae.pretrain", "--data_path", str(root), "--output_dir",
                           str(tmp_path / "o"), "--device", "cpu"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "zz has no image files" in lines[0] and "Traceback" not in proc.stderr
