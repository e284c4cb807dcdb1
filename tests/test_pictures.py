"""Reconstruction grids and curves: written at pretraining checkpoints and by ``python -m mae.visualize``."""
import json
import pathlib

import pytest
import torch
from PIL import Image

from mae import config, models_mae, models_vit, pictures, pretrain, visualize

from test_finetune import write_folder_dataset


def is_png(path: pathlib.Path, min_side: int = 100) -> bool:
    with Image.open(path) as img:
        img.load()
        return img.format == "PNG" and min(img.size) >= min_side


def test_reconstruction_uses_fixed_noise_and_pastes_visible_patches():
    torch.manual_seed(0)
    model = models_mae.mae_vit_tiny_patch4(norm_pix_loss=True)
    model.train()
    imgs = torch.randn(3, 3, 16, 16)
    a = pictures.reconstruct(model, imgs, mask_ratio=0.75)
    b = pictures.reconstruct(model, imgs, mask_ratio=0.75)
    assert model.training  # mode restored
    for key in ("original", "masked", "reconstruction", "pasted"):
        assert a[key].shape == (3, 3, 16, 16) and 0 <= a[key].min() and a[key].max() <= 1
        assert torch.equal(a[key], b[key])
    grey = (a["masked"] == 0.5).all(dim=1)  # [3, 16, 16]; 12 of 16 patches of 16 pixels removed
    assert grey.float().mean().item() == pytest.approx(0.75, abs=0.05)
    visible = ~grey
    assert torch.equal(a["pasted"].permute(1, 0, 2, 3)[:, visible], a["original"].permute(1, 0, 2, 3)[:, visible])


def test_grid_and_curves_png(tmp_path):
    model = models_mae.mae_vit_tiny_patch4()
    rows = pictures.reconstruct(model, torch.randn(4, 3, 16, 16))
    assert is_png(pictures.save_reconstruction_grid(rows, tmp_path / "r.png", "title"))
    metrics = tmp_path / "metrics.jsonl"
    records = [{"type": "step", "epoch": e, "step": s, "steps": 4, "loss": 1.0 / (1 + e + s / 4), "lr": 1e-3 * e}
               for e in range(3) for s in range(0, 4, 2)]
    records += [{"type": "epoch", "epoch": e, "loss": 1.0 / (1 + e), "lr": 1e-3} for e in range(3)]
    records += [{"job": "finetune", "epoch": e, "val_top1": 50.0 + e, "train_loss": 1.0} for e in range(3)]
    metrics.write_text("\n".join(json.dumps(r) for r in records) + "\n{torn")
    assert is_png(pictures.save_curves(metrics, tmp_path / "curves.png"))
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pics")
    data = write_folder_dataset(root / "data", {"train": 6, "validation": 2})
    out = root / "pretrain"
    cfg = config.parse(["--config", "digits_pretrain", "--model", "mae_vit_tiny_patch4", "--input_size", "16",
                        "--data_path", str(data), "--output_dir", str(out), "--batch_size", "6", "--epochs", "2",
                        "--saveckp_freq", "1", "--num_workers", "0", "--device", "cpu", "--warmup_epochs", "1"],
                       job="pretrain")
    pretrain.run(cfg)  # default hooks: mae.pictures.on_pretrain_checkpoint
    return data, out


def test_pretraining_writes_pictures_at_checkpoints(pretrain_run):
    _, out = pretrain_run
    for name in ("reconstruction_0.png", "reconstruction_1.png", "curves.png"):
        assert is_png(out / name), name


def test_visualize_any_checkpoint(pretrain_run, tmp_path, capsys):
    data, out = pretrain_run
    assert visualize.main(["--checkpoint", str(out / "model_0.pth"), "--output_dir", str(tmp_path / "v"),
                           "--data_path", str(data)]) == 0
    assert is_png(tmp_path / "v" / "reconstruction_0.png") and is_png(tmp_path / "v" / "curves.png")
    # a classifier checkpoint has no decoder: curves only
    clf = tmp_path / "clf"
    clf.mkdir()
    torch.save({"model": models_vit.vit_tiny_patch4().state_dict(), "epoch": 0}, clf / "checkpoint.pth")
    (clf / "metrics.jsonl").write_text(json.dumps({"job": "finetune", "epoch": 0, "step": 0, "steps": 1,
                                                   "loss": 2.0, "lr": 1e-3}) + "\n")
    assert visualize.main(["--checkpoint", str(clf / "checkpoint.pth"), "--output_dir", str(tmp_path / "c")]) == 0
    assert "curves only" in capsys.readouterr().out
    assert is_png(tmp_path / "c" / "curves.png") and not list((tmp_path / "c").glob("reconstruction*"))


def test_visualize_wrong_model_is_one_line_exit_2(pretrain_run, tmp_path, capsys):
    _, out = pretrain_run
    with pytest.raises(SystemExit) as exit_info:
        visualize.main(["--checkpoint", str(out / "checkpoint.pth"), "--output_dir", str(tmp_path),
                        "--model", "mae_vit_digits", "--input_size", "32"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit model mae_vit_digits" in err[0]
