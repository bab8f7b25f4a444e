"""The released ESPNet / ESPNet-C / ESPNetv2 Cityscapes weights: they load, preprocess and predict as the authors'."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from edgekit.board.classes import cityscapes_classes
from edgekit.board.preprocess import read_bgr
from edgekit.checkpoint import Checkpoint
from edgekit.errors import EdgekitError
from edgekit.models.complexity import count_params
from edgekit.predict import predict_labels
from edgekit.weights import import_official, load_official

# Counted in the released files (../shared/reference/espnet-espnetv2.md, section 1.4).
ESPNET_PARAMS = {3: 202_649, 5: 267_417, 8: 364_569}
ESPNET_C_PARAMS = {3: 187_529, 5: 252_297, 8: 349_449}
ESPNETV2_PARAMS = {"0.5": 80_342, "1.0": 234_010, "1.5": 468_362, "2.0": 789_242}
ROAD, BUILDING, VEGETATION, SKY, CAR = 0, 2, 8, 10, 13
ESPNET_Q8 = "espnet/espnet_p_2_q_8.pth"
FRAMES = ("frankfurt_000000_000294_leftImg8bit.png", "frankfurt_000000_000576_leftImg8bit.png")


@functools.cache
def _predict(shared: Path, name: str, weights: str, frame: str) -> np.ndarray:
    """Class map of a sample frame at its own size, computed once per session (forwards are the slow part)."""
    model, preprocessing = load_official(name, shared / "weights" / weights)
    return predict_labels(model, preprocessing, read_bgr(shared / "samples/cityscapes" / frame))


@pytest.mark.parametrize("q", [3, 5, 8])
@pytest.mark.parametrize("encoder", [False, True], ids=["espnet", "espnet-c"])
def test_every_official_espnet_file_loads(shared: Path, q: int, encoder: bool) -> None:
    folder = shared / "weights/espnet" / ("encoder" if encoder else "")
    model, preprocessing = load_official("espnet-c" if encoder else "espnet", folder / f"espnet_p_2_q_{q}.pth")
    assert not model.training
    assert count_params(model) == (ESPNET_C_PARAMS if encoder else ESPNET_PARAMS)[q]
    assert len(getattr(model, "level3", None) or model.encoder.level3) == q  # q read from the file's modules
    assert (preprocessing.input_size, preprocessing.channel_order, preprocessing.scale) == ((1024, 512), "BGR", 1 / 255)


@pytest.mark.parametrize("size", ["512x256", "1024x512"])
@pytest.mark.parametrize("scale", sorted(ESPNETV2_PARAMS))
def test_every_official_espnetv2_city_file_loads(shared: Path, scale: str, size: str) -> None:
    path = shared / f"weights/espnetv2/espnetv2_s_{scale}_city_{size}.pth"
    model, preprocessing = load_official(f"espnetv2-s{scale}", path)
    assert not model.training
    assert count_params(model) == ESPNETV2_PARAMS[scale]
    assert f"{preprocessing.width}x{preprocessing.height}" == size
    assert preprocessing.channel_order == "RGB" and preprocessing.resize == "pil-bilinear"


def test_imported_checkpoint_carries_classes_preprocessing_and_provenance(shared: Path, tmp_path: Path) -> None:
    official = shared / "weights/espnetv2/espnetv2_s_0.5_city_512x256.pth"
    saved = import_official("espnetv2-s0.5", official).save(tmp_path / "v2.ckpt")
    checkpoint = Checkpoint.load(saved)
    assert checkpoint.classes == cityscapes_classes()
    assert checkpoint.classes.names[:3] == ("road", "sidewalk", "building") and len(checkpoint.classes) == 20
    assert checkpoint.preprocessing.input_size == (512, 256)
    assert checkpoint.meta["official_file"] == official.name
    assert checkpoint.meta["official_sha256"] == hashlib.sha256(official.read_bytes()).hexdigest()
    reference = torch.load(official, map_location="cpu", weights_only=True)
    rebuilt = checkpoint.build().state_dict()
    assert all(torch.equal(rebuilt[key], value) for key, value in reference.items())


def test_espnetv2_preprocessing_is_the_official_data_transform(shared: Path) -> None:
    """EdgeNets test_segmentation.py: PIL RGB resize (bilinear), to_tensor (/255), ImageNet normalize."""
    image_path = shared / "samples/cityscapes/frankfurt_000000_000576_leftImg8bit.png"
    _, preprocessing = load_official("espnetv2-s0.5", shared / "weights/espnetv2/espnetv2_s_0.5_city_512x256.pth")
    rgb = np.asarray(Image.open(image_path).convert("RGB").resize((512, 256), Image.Resampling.BILINEAR))
    official = (rgb / np.float32(255) - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
    ours = preprocessing.load(image_path)
    assert ours.shape == (1, 3, 256, 512)
    assert np.abs(ours[0].transpose(1, 2, 0) - official).max() < 1e-5


def test_espnet_labels_match_the_official_visualize_results_pipeline(shared: Path) -> None:
    """ESPNet test/VisualizeResults.py normalises the float image before resizing; ours resizes the uint8 frame
    first (what a camera pipeline can do). The class maps must still agree on nearly every pixel."""
    image = read_bgr(shared / "samples/cityscapes" / FRAMES[0])
    model, _ = load_official("espnet", shared / "weights" / ESPNET_Q8)
    mean, std = np.float32([72.3923111, 82.90893555, 73.15840149]), np.float32([45.3192215, 46.15289307, 44.91483307])
    official_input = cv2.resize((image.astype(np.float32) - mean) / std, (1024, 512)) / 255
    with torch.inference_mode():
        official = model(torch.from_numpy(official_input.transpose(2, 0, 1)[None].copy()))[0].argmax(0).numpy()
    ours = _predict(shared, "espnet", ESPNET_Q8, FRAMES[0])[::2, ::2]  # nearest 2x up-sampling undone exactly
    assert (ours == official).mean() > 0.995


def _regions(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower-middle road area ahead of the car (above the bonnet) and the top 30% of the frame."""
    height, width = labels.shape
    road_area = labels[int(0.55 * height) : int(0.8 * height), int(0.3 * width) : int(0.7 * width)]
    return road_area, labels[: int(0.3 * height)]


@pytest.mark.parametrize(
    ("name", "weights"),
    [("espnet", ESPNET_Q8), ("espnetv2-s0.5", "espnetv2/espnetv2_s_0.5_city_512x256.pth")],
)
@pytest.mark.parametrize("frame", FRAMES)
def test_predictions_on_cityscapes_frames_are_what_a_person_sees(
    shared: Path, name: str, weights: str, frame: str
) -> None:
    labels = _predict(shared, name, weights, frame)
    assert labels.shape == (1024, 2048)  # the frame's own size
    road_area, top = _regions(labels)
    assert (road_area == ROAD).mean() > 0.9
    assert np.isin(top, [BUILDING, VEGETATION, SKY]).mean() > 0.7
    if "000576" in frame:  # a street lined with parked cars
        assert (labels == CAR).mean() > 0.1


def test_truncated_file_is_a_clear_error(shared: Path, tmp_path: Path) -> None:
    data = (shared / "weights/espnet/espnet_p_2_q_3.pth").read_bytes()
    truncated = tmp_path / "espnet_p_2_q_3.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgekitError, match="truncated or corrupt") as info:
        load_official("espnet", truncated)
    assert "\n" not in str(info.value)


def test_unknown_model_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="no official Cityscapes weights are known for 'lpsnet-s'"):
        load_official("lpsnet-s", tmp_path / "x.pth")
    with pytest.raises(EdgekitError, match="official weight file not found"):
        load_official("espnet", tmp_path / "missing.pth")


def test_encoder_weights_into_the_full_espnet_name_the_difference(shared: Path) -> None:
    with pytest.raises(
        EdgekitError, match=r"holds espnet-c weights \(p=2, q=8\), not espnet: .*missing keys.*unexpected keys"
    ):
        load_official("espnet", shared / "weights/espnet/encoder/espnet_p_2_q_8.pth")


def test_other_width_names_the_shape_differences(shared: Path) -> None:
    with pytest.raises(
        EdgekitError, match=r"holds espnetv2-s2.0 weights \(s=2.0\), not espnetv2-s1.0: .*shape mismatches"
    ):
        load_official("espnetv2-s1.0", shared / "weights/espnetv2/espnetv2_s_2.0_city_512x256.pth")


def test_camvid_weights_name_the_class_count_difference(shared: Path) -> None:
    with pytest.raises(EdgekitError, match=r"encoder.classifier.conv.weight: file \(12, 256, 1, 1\) vs model \(20,"):
        load_official("espnet", shared / "weights/espnet/espnet_p_2_q_8_camvid.pth")


def test_data_parallel_prefix_and_size_free_file_name(shared: Path, tmp_path: Path) -> None:
    """``module.`` keys (nn.DataParallel saves) load; without WxH in the name the default size is chosen and said."""
    state = torch.load(
        shared / "weights/espnetv2/espnetv2_s_0.5_city_512x256.pth", map_location="cpu", weights_only=True
    )
    path = tmp_path / "my_espnetv2.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    checkpoint = import_official("espnetv2-s0.5", path)
    assert checkpoint.preprocessing.input_size == (1024, 512)
    assert any(note.startswith("input 1024x512: default") for note in checkpoint.meta["import_notes"])
    assert import_official("espnetv2-s0.5", path, input_size=(768, 384)).preprocessing.input_size == (768, 384)
