"""Dataset readers on real files (../shared samples) and on layouts written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.board.synthetic import generate_scene, write_cityscapes_layout
from edgekit.data.datasets import CAMVID, UnreadableSample, camvid, folder, open_dataset
from edgekit.data.loader import SegmentationDataset, Skipped
from edgekit.data.transforms import Augmentation
from edgekit.errors import EdgekitError


def test_voc_reader_on_labelme_export(shared: Path) -> None:
    root = shared / "samples" / "labelme-voc"
    train, val = open_dataset(root, "train"), open_dataset(root, "val")
    assert train.layout == "voc" and len(train) + len(val) == 3 and len(val) == 1
    assert train.classes.names[0] == "_background_" and train.classes.names[15] == "person"
    assert len(train.classes) == 21
    for dataset in (train, val):
        for index in range(len(dataset)):
            image, mask = dataset.read(index)
            assert image.shape[:2] == mask.shape
            values = set(np.unique(mask).tolist())
            assert values <= set(range(21)) | {255} and len(values - {0, 255}) >= 1


def test_folder_reader_on_labelme_street_sequence(shared: Path) -> None:
    root = shared / "samples" / "labelme-street-sequence"
    dataset = folder(root, "train", images=".", masks="SegmentationClassPNG", classes_file="class_names.txt")
    assert dataset.classes.names == ("_background_", "car", "track")
    assert len(dataset) == 4  # five frames, every fifth by name goes to val
    image, mask = dataset.read(0)
    assert image.shape == (563, 1000, 3) and mask.shape == (563, 1000)
    assert set(np.unique(mask).tolist()) == {0, 1, 2}


def test_cityscapes_reader_maps_label_ids_officially(tmp_path: Path) -> None:
    write_cityscapes_layout(tmp_path, 3, (128, 64), seed=1)
    dataset = open_dataset(tmp_path, "train")
    assert dataset.layout == "cityscapes" and len(dataset) == 2 and len(dataset.classes) == 19
    for index, sample in enumerate(dataset.samples):
        _, mask = dataset.read(index)
        train_ids_file = str(sample.mask).replace("_labelIds.png", "_labelTrainIds.png")
        assert np.array_equal(mask, cv2.imread(train_ids_file, cv2.IMREAD_UNCHANGED))


def test_camvid_reader_maps_void_to_ignore(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    image, _ = generate_scene(0, (96, 64))
    mask = np.tile(np.arange(12, dtype=np.uint8), (64, 8))
    cv2.imwrite(str(tmp_path / "train" / "0001TP_006690.png"), image)
    cv2.imwrite(str(tmp_path / "trainannot" / "0001TP_006690.png"), mask)
    dataset = camvid(tmp_path, "train")
    assert dataset.classes == CAMVID and len(dataset.classes) == 11
    _, read = dataset.read(0)
    assert np.array_equal(read[mask < 11], mask[mask < 11]) and (read[mask == 11] == 255).all()


def _folder_dataset(root: Path, count: int = 4) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text(
        "names: [road, car, sky]\npalette: [[128, 64, 128], [0, 0, 142], [70, 130, 180]]\n"
    )
    for i in range(count):
        image, label = generate_scene(i, (64, 32))
        mask = np.select([label == 0, label == 13, label == 10], [0, 1, 2], 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"frame{i}.jpg"), image)
        cv2.imwrite(str(root / "masks" / f"frame{i}.png"), mask)


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    _folder_dataset(tmp_path)
    (tmp_path / "masks" / "frame1.png").unlink()
    with pytest.raises(EdgekitError, match=r"no mask for .*frame1\.jpg"):
        open_dataset(tmp_path, "train")
    cv2.imwrite(str(tmp_path / "masks" / "frame1.png"), np.zeros((10, 10), np.uint8))
    dataset = open_dataset(tmp_path, "train")
    with pytest.raises(EdgekitError, match=r"frame1\.png is 10x10 but its image .*frame1\.jpg is 64x32"):
        dataset.verify()
    (tmp_path / "images" / "frame0.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(tmp_path / "masks" / "frame1.png"), np.zeros((32, 64), np.uint8))
    dataset = open_dataset(tmp_path, "train")
    assert [s.image.name for s in dataset.verify()] == ["frame0.jpg"]
    with pytest.raises(UnreadableSample, match=r"frame0\.jpg"):
        dataset.read(0)
    item = SegmentationDataset(dataset, ESPNET_CITYSCAPES.with_size(64, 32))[0]
    assert isinstance(item, Skipped) and "frame0.jpg" in item.what


def test_colour_masks_map_through_the_palette(tmp_path: Path) -> None:
    _folder_dataset(tmp_path, 2)
    mask = np.zeros((32, 64, 3), np.uint8)
    mask[:, :32] = (142, 0, 0)  # BGR of car (0, 0, 142)
    mask[:, 32:] = (180, 130, 70)  # sky
    cv2.imwrite(str(tmp_path / "masks" / "frame0.png"), mask)
    dataset = folder(tmp_path, "train", val_fraction=0.5)
    _, read = dataset.read(0)
    assert (read[:, :32] == 1).all() and (read[:, 32:] == 2).all()


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    rng = np.random.default_rng(0)
    _, label = generate_scene(7, (256, 128))
    lut = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    image = lut[label]  # every class has its own colour: alignment is checkable pixel by pixel
    augment = Augmentation(brightness=0.0, contrast=0.0, saturation=0.0)
    for seed in range(6):
        out_image, out_mask = augment(image, label, (128, 64), np.random.default_rng(seed))
        assert out_image.shape == (64, 128, 3) and out_mask.shape == (64, 128)
        labelled = out_mask != 255
        matches = (np.abs(out_image.astype(int) - lut[out_mask].astype(int)).max(axis=2) <= 2) & labelled
        assert matches.sum() >= 0.85 * labelled.sum()
    jittered, _ = Augmentation()(image, label, (128, 64), np.random.default_rng(1))
    assert not np.array_equal(jittered, augment(image, label, (128, 64), np.random.default_rng(1))[0])


def test_dataset_yields_preprocessed_tensors_at_training_size() -> None:
    from edgekit.board.synthetic import SyntheticScenes

    preprocessing = ESPNET_CITYSCAPES.with_size(128, 64)
    scenes = SyntheticScenes(2, (256, 128), seed=3)
    x, y = SegmentationDataset(scenes, preprocessing)[1]
    image, label = scenes.read(1)
    assert x.shape == (3, 64, 128) and x.dtype == torch.float32 and y.shape == (64, 128) and y.dtype == torch.int64
    assert np.allclose(x.numpy(), preprocessing(image)[0])
    assert np.array_equal(y.numpy(), cv2.resize(label, (128, 64), interpolation=cv2.INTER_NEAREST))
    augmented = SegmentationDataset(scenes, preprocessing, Augmentation(), seed=5)
    first, again = augmented[0], augmented[0]
    assert isinstance(first, tuple) and isinstance(again, tuple) and torch.equal(first[0], again[0])
    augmented.set_epoch(1)
    other = augmented[0]
    assert isinstance(other, tuple) and not torch.equal(first[0], other[0])
