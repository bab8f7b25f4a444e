"""Device profiles: every shipped profile validates, bad YAML fails naming the file and field, precision choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgekit.board.targets import choose_precision, load_all_targets, load_target, targets_dir
from edgekit.cli import main
from edgekit.errors import EdgekitError

REQUIRED = {
    "jetson-nano",
    "jetson-tx2",
    "jetson-xavier-nx",
    "jetson-agx-xavier",
    "jetson-orin-nano",
    "jetson-agx-orin",
    "titan-x-pascal",
    "gtx-960m",
    "rtx-3060",
    "rtx-4090",
    "a100",
    "h100",
    "cpu-x86",
    "cpu-arm",
}


def test_all_profiles_validate_and_carry_the_issue_facts() -> None:
    targets = {t.name: t for t in load_all_targets()}
    assert set(targets) >= REQUIRED
    nano = targets["jetson-nano"]
    assert (nano.compute_capability, nano.memory_gib, nano.tensorrt_version) == ((5, 3), 4.0, (8, 2, 1))
    assert nano.software["jetpack"].startswith("4.6") and nano.dla_cores == 0
    assert "int8" not in nano.precisions and nano.peak_gmacs["int8"] is None
    assert targets["jetson-tx2"].sm == "sm_62" and "int8" not in targets["jetson-tx2"].precisions
    for name in ("jetson-xavier-nx", "jetson-agx-xavier"):
        assert targets[name].sm == "sm_72" and targets[name].dla_cores == 2 and "int8" in targets[name].precisions
    assert targets["jetson-orin-nano"].sm == "sm_87" and targets["jetson-orin-nano"].dla_cores == 0
    orin = targets["jetson-agx-orin"]
    assert orin.dla_cores == 2 and orin.software["jetpack"].startswith("6") and orin.tensorrt_version == (10, 3, 0)
    assert targets["cpu-x86"].backend == targets["cpu-arm"].backend == "onnxruntime"
    for target in targets.values():
        assert target.sources and target.peak_source
        for precision in target.precisions:
            if target.backend == "tensorrt":
                assert target.peak_gmacs[precision], f"{target.name}: no peak for {precision}"


def write_profile(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((targets_dir() / "jetson-nano.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / "jetson-nano.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precisions": ["fp32", "fp8"]}, "field 'precisions': 'fp8' is not a precision"),
        ({"default_precision": "int8"}, "field 'default_precision': int8 is not among the supported"),
        ({"gpu": {"name": "x", "compute_capability": 5.3}}, "field 'gpu': compute_capability: expected a quoted"),
        ({"input_size": [500, 256]}, "field 'input_size'"),
        ({"unsupported": None}, "field 'unsupported': int8 is not in 'precisions'"),
        ({"dla_cores": "none"}, "field 'dla_cores': expected int, got 'none'"),
        ({"sources": None}, "field 'sources': is required"),
        ({"peak_gmacs": {"fp32": 1.0}}, "field 'peak_gmacs': needs a 'source'"),
        ({"name": "nano"}, "field 'name': 'nano' must match the file name"),
        ({"precsion": "fp16"}, "unknown field(s) precsion"),
    ],
)
def test_bad_profile_names_file_and_field(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    path = write_profile(tmp_path, **changes)
    with pytest.raises(EdgekitError) as excinfo:
        load_target(path)
    assert str(path) in str(excinfo.value)
    assert message in str(excinfo.value)


def test_broken_yaml_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(EdgekitError, match="not valid YAML"):
        load_target(path)
    with pytest.raises(EdgekitError, match=r"unknown target 'jetson-nanoo'; available: .*jetson-nano"):
        load_target("jetson-nanoo")


def test_precision_choice_says_what_and_why() -> None:
    nano = load_target("jetson-nano")
    choice = choose_precision(nano, "int8")
    assert (choice.chosen, choice.substituted) == ("fp16", True)
    assert "INT8 is not available on jetson-nano" in choice.reason and "platform_has_fast_int8" in choice.reason
    with pytest.raises(EdgekitError, match=r"INT8 is not available on jetson-nano: .*drop --strict"):
        choose_precision(nano, "int8", strict=True)
    assert choose_precision(nano).chosen == "fp16"
    assert choose_precision(load_target("jetson-xavier-nx"), "int8", strict=True).chosen == "int8"
    assert choose_precision(load_target("titan-x-pascal"), "fp16").chosen == "fp32"  # 1/64-rate FP16
    assert choose_precision(load_target("gtx-960m"), "int8").chosen == "fp32"
    with pytest.raises(EdgekitError, match="unknown precision 'int4'"):
        choose_precision(nano, "int4")


def test_cli_lists_and_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 0
    listing = capsys.readouterr().out
    assert "jetson-nano" in listing and "sm_53" in listing and "h100" in listing
    assert main(["targets", "show", "jetson-nano"]) == 0
    shown = capsys.readouterr().out
    assert "4.6.1" in shown and "no INT8" in shown and "sources" in shown
    assert main(["targets", "show", "nonexistent"]) == 2


@pytest.mark.parametrize("name", ["cpu-x86", "cpu-arm"])
def test_cpu_profiles_do_not_offer_int8_and_give_the_measured_ratio(name: str) -> None:
    """INT8 on onnxruntime's CPU provider was measured slower than FP32 at >= 97 % agreement: the profile says so
    with the committed measurement, and an INT8 request gets FP32 with that reason."""
    target = load_target(name)
    assert "int8" not in target.precisions
    reason = target.unsupported["int8"]
    measured = json.loads((targets_dir().parent / "benchmarks/results/cpu-int8-espnet-1024x512.json").read_text())
    two_threads, one_thread = (measured["timing"][t]["speed_vs_fp32"]["qdq_edgekit"] for t in ("2", "1"))
    assert f"{two_threads:.2f}x the FP32 speed with 2 threads and {one_thread:.2f}x with 1 thread" in reason
    assert two_threads < 1.0
    assert "benchmarks/results/cpu-int8-espnet-1024x512.json" in reason
    fused_agreement = min(measured["agreement_with_fp32"]["qdq_ort_percentile_edgekit_float"])
    assert f"{fused_agreement * 100:.1f} %" in reason and fused_agreement < 0.97
    choice = choose_precision(target, "int8", strict=False)
    assert choice.chosen == "fp32" and choice.substituted and reason in choice.reason
