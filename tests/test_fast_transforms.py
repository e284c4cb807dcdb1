"""The fast pretraining augmentation draws the reference's crops and flips and gives its pixels."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mae import data, fast_transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from photos import write_photos  # noqa: E402

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    return [p.read_bytes() for p in write_photos(tmp_path_factory.mktemp("photos"), count=16)]


def pair(blob, seed, size=64):
    """(reference output, fast output) of one image under the same seed."""
    torch.manual_seed(seed)
    ref = data.reference_pretrain_transform(size)(Image.open(io.BytesIO(blob)).convert("RGB"))
    torch.manual_seed(seed)
    fast = data.pretrain_transform(size)(blob)
    return ref, fast


def test_crop_and_flip_draws_are_the_references():
    from torchvision.transforms import RandomResizedCrop

    t = fast_transforms.FastPretrainTransform(224)
    for seed in range(200):
        width, height = 200 + 37 * seed % 900, 150 + 53 * seed % 700
        torch.manual_seed(seed)
        img = Image.new("RGB", (width, height))
        ref = RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]) + (bool(torch.rand(1) < 0.5),)
        torch.manual_seed(seed)
        assert t.sample(width, height) == ref


@pytest.mark.parametrize("width, height", [(500, 375), (375, 500), (224, 224), (3000, 120), (90, 2000), (1, 1), (7, 3)])
def test_crop_params_are_torchvisions_get_params(width, height):
    from torchvision.transforms import RandomResizedCrop

    img = Image.new("L", (width, height))
    for seed in range(100):
        torch.manual_seed(seed)
        ref = RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]), torch.rand(1).item()
        torch.manual_seed(seed)
        # the same crop, and the generator left where get_params leaves it (the next draw is the same)
        assert (fast_transforms.crop_params(width, height), torch.rand(1).item()) == ref


def test_same_pixels_as_the_reference_on_imagenet_sized_jpegs(jpegs):
    diffs = []
    for k, blob in enumerate(jpegs):
        ref, fast = pair(blob, seed=k, size=224)
        assert fast.shape == ref.shape == (3, 224, 224) and fast.dtype == torch.float32
        diffs.append((fast - ref).abs().mean().item())
    # same crop and flip: only resampling rounding differs (a wrong crop or flip is ~0.5 or more)
    assert max(diffs) < 0.01, diffs


def test_output_statistics_match_the_reference(jpegs):
    refs, fasts = zip(*(pair(blob, seed=100 + k, size=96) for k, blob in enumerate(jpegs * 2)))
    ref, fast = torch.stack(refs), torch.stack(fasts)
    for dims in ((0, 2, 3),):
        assert torch.allclose(fast.mean(dims), ref.mean(dims), atol=0.01)
        assert torch.allclose(fast.std(dims), ref.std(dims), rtol=0.01)


def test_reduced_size_decoding_when_the_crop_allows_it(tmp_path):
    big = write_photos(tmp_path, count=1)[0]
    img = Image.open(big).resize((1800, 1400), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    blob = buf.getvalue()
    assert fast_transforms.dct_divisor(1500, 1200, 224) == 2 and fast_transforms.dct_divisor(447, 900, 224) == 1
    hits, diffs = 0, []
    for seed in range(12):
        torch.manual_seed(seed)
        i, j, h, w, _ = fast_transforms.FastPretrainTransform(224).sample(1800, 1400)
        hits += fast_transforms.dct_divisor(w, h, 224) > 1
        ref, fast = pair(blob, seed, size=224)
        diffs.append((fast - ref).abs().mean().item())
    assert hits >= 6  # most crops of a large image decode at 1/2 or less
    assert max(diffs) < 0.05, diffs


def test_uint8_output_normalised_per_batch_equals_per_sample(jpegs):
    per_sample, raw = [], []
    for k, blob in enumerate(jpegs[:4]):
        torch.manual_seed(k)
        per_sample.append(fast_transforms.FastPretrainTransform(32)(blob))
        torch.manual_seed(k)
        raw.append(fast_transforms.FastPretrainTransform(32, normalize=False)(Image.open(io.BytesIO(blob))))
    assert raw[0].dtype == torch.uint8 and raw[0].is_contiguous()
    assert torch.allclose(fast_transforms.normalize_batch(torch.stack(raw)), torch.stack(per_sample), atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_formats_and_modes_like_the_reference(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    ref, fast = pair(buf.getvalue(), seed=3, size=32)
    assert (fast - ref).abs().mean().item() < 0.03


def test_pil_image_input_gives_the_same_sample(jpegs):
    torch.manual_seed(5)
    from_bytes = data.pretrain_transform(48)(jpegs[3])
    torch.manual_seed(5)
    from_pil = data.pretrain_transform(48)(Image.open(io.BytesIO(jpegs[3])))
    assert (from_bytes - from_pil).abs().max().item() < 0.05


def test_folder_dataset_uses_the_fast_path(tmp_path):
    write_photos(tmp_path / "train" / "a", count=2)
    ds = data.build_dataset(tmp_path, "train", data.pretrain_transform(32))
    img, target = ds[1]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and target == 0


def test_cpu_pretraining_takes_uint8_batches_normalised_to_the_same_values(tmp_path):
    """CPU/CUDA pretraining loads uint8 samples (a quarter of the bytes through the loader) and the
    engine normalises each batch on the device: exactly the floats the normalising transform gives."""
    write_photos(tmp_path / "train" / "a", count=6)
    cfg = type("Cfg", (), {"generated_data": False, "data_path": str(tmp_path), "input_size": 48,
                           "check_images": True})()
    batches = {}
    for normalize in (True, False):
        torch.manual_seed(11)
        loader = torch.utils.data.DataLoader(data.build_pretrain_dataset(cfg, normalize=normalize), batch_size=3)
        batches[normalize] = [samples for samples, _ in loader]
    assert all(b.dtype == torch.uint8 for b in batches[False]) and all(b.dtype == torch.float32 for b in batches[True])
    for raw, normalised in zip(batches[False], batches[True]):
        assert torch.equal(fast_transforms.model_input(raw), normalised)
    floats = torch.randn(2, 3, 8, 8)
    assert fast_transforms.model_input(floats) is floats  # generated or normalised data passes unchanged


def test_the_ipu_loaders_collate_normalises_uint8_batches_in_its_workers_to_the_same_values(tmp_path):
    """The IPU loop takes normalised floats: its loader gets uint8 samples and normalises each batch
    in the worker (collate_normalized), exactly as normalising every sample would."""
    write_photos(tmp_path / "train" / "a", count=6)
    cfg = type("Cfg", (), {"generated_data": False, "data_path": str(tmp_path), "input_size": 48,
                           "check_images": True})()
    batches = {}
    for normalize, collate in ((True, None), (False, fast_transforms.collate_normalized)):
        torch.manual_seed(11)
        loader = torch.utils.data.DataLoader(data.build_pretrain_dataset(cfg, normalize=normalize), batch_size=3,
                                             num_workers=1, collate_fn=collate)
        batches[normalize] = list(loader)
    for (mine, my_targets), (theirs, their_targets) in zip(batches[False], batches[True]):
        assert mine.dtype == torch.float32 and torch.equal(mine, theirs) and torch.equal(my_targets, their_targets)
    generated = [(torch.randn(3, 8, 8), 1), (torch.randn(3, 8, 8), 2)]
    imgs, targets = fast_transforms.collate_normalized(generated)
    assert torch.equal(imgs, torch.stack([g for g, _ in generated])) and targets.tolist() == [1, 2]
