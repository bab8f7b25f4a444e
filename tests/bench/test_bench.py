"""edgekit bench: real onnxruntime on a tiny ESPNet bundle (FP32 + a real Q/DQ INT8), stop rule, MAC counter,
fingerprint, monitors and the PyTorch backend (CUDA paths run where a GPU exists, skip elsewhere)."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekit.bench.macs import graph_stats
from edgekit.bench.zoo import zoo_workloads
from edgekit.board.backends.torch_backend import TorchBackend, authors_timing_loop
from edgekit.board.measure.bench import SCHEMA, Bench, BenchConfig, load_results, write_results
from edgekit.board.measure.fingerprint import FIELDS, NOT_AVAILABLE, device_fingerprint
from edgekit.board.measure.monitor import PowerMonitor, parse_tegrastats_power_w, peak_rss_mb, reset_peak_rss
from edgekit.board.measure.timing import StopRule, median_ci, relative_ci, time_until_stable
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.models import build_model
from edgekit.models.complexity import measure

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none here)")


def _export(model: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["logits"])  # fmt: skip
    return path


def test_results_schema_and_values(bench_document: dict[str, Any], tmp_path: Path) -> None:
    assert bench_document["schema"] == SCHEMA
    assert set(bench_document["device"]) == set(FIELDS)
    fp32, int8, fp16 = bench_document["results"]
    for result in (fp32, int8):
        assert result["status"] == "ok", result.get("reason")
        latency = result["latency_ms"]
        assert latency["min_ms"] <= latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        timing = result["timing"]
        assert latency["count"] == timing["runs"]
        assert timing["runs"] >= bench_document["stop_rule"]["min_runs"] or "time budget" in timing["stop_reason"]
        assert result["fps_inference"] == pytest.approx(1000.0 / latency["p50_ms"], rel=1e-3)
        assert result["memory"]["peak_rss_mb"] > 50
        assert result["power"]["source"] == NOT_AVAILABLE and result["power"]["reason"]
        assert result["top_layers"] and all(0 < row["share"] <= 1 for row in result["top_layers"])
        assert result["pipeline"]["status"] == "ok" and result["pipeline"]["frames"] == 4
        assert result["graph"]["macs_per_image"] > 0
        assert result["gmacs_per_s"] == pytest.approx(result["graph"]["gmacs_per_image"] * result["fps_inference"])
        assert result["fraction_of_peak"] == NOT_AVAILABLE  # the cpu-x86 profile states no peak
    assert fp32["accuracy"]["agreement_with_fp32"] == "reference"
    assert all(0.0 <= r["accuracy"]["miou"] <= 1.0 for r in (fp32, int8))  # random weights: low, but measured
    assert 0.0 <= int8["accuracy"]["agreement_with_fp32"] <= 1.0
    assert fp32["graph"] == int8["graph"]  # MACs and params are counted on the FP32 graph of the same network
    assert fp16["status"] == "skipped" and "no fp16 ONNX" in fp16["reason"]
    path = write_results(bench_document, tmp_path / "r.json")
    assert load_results(path)["results"][0]["model"] == "espnet"


def test_load_results_rejects_other_json(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"frames_in": 3}))
    with pytest.raises(EdgekitError, match="not an `edgekit bench` result"):
        load_results(other)


def test_median_ci_is_distribution_free_and_narrows_with_samples() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.lognormal(0, 0.3, 30), rng.lognormal(0, 0.3, 3000)
    low, high = median_ci(few)
    assert low <= np.median(few) <= high
    assert relative_ci(many) < relative_ci(few) < 0.5
    assert relative_ci(np.ones(4)) == float("inf")  # too few samples to say anything


def test_stop_rule_stops_when_stable_and_reports_budget_when_not() -> None:
    rule = StopRule(warmup=1, min_runs=10, budget_s=10, target_rel_ci=0.1)
    steady = time_until_stable(lambda: time.sleep(0.005), rule)
    assert steady.stable and len(steady.samples_s) >= 10 and steady.rel_ci <= 0.1
    rng = np.random.default_rng(1)
    noisy = time_until_stable(lambda: time.sleep(float(rng.choice([0.0005, 0.01]))),
                              StopRule(warmup=0, min_runs=5, budget_s=0.3, target_rel_ci=1e-6))  # fmt: skip
    assert not noisy.stable and "time budget" in noisy.stop_reason


class _Mixed(nn.Module):
    """Every operator the counter handles: plain, grouped and dilated conv, transposed conv, Linear (Gemm/MatMul)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.grouped(self.conv(x)))
        return self.fc(y.permute(0, 2, 3, 1))


@pytest.mark.parametrize(("model", "size"), [("mixed", (40, 24)), ("espnet-c", (64, 32))])
def test_onnx_mac_counter_agrees_with_torch_hooks(model: str, size: tuple[int, int], tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Mixed() if model == "mixed" else build_model(model, num_classes=20)
    expected = measure(net, size)
    counted = graph_stats(_export(net, (2, 3, size[1], size[0]), tmp_path / "m.onnx"))
    assert counted.macs == expected.macs  # per image, although the graph runs batch 2
    assert counted.batch == 2
    assert 0.95 * expected.params <= counted.params <= expected.params  # BN folded into convs at export


def test_onnx_mac_counter_counts_a_symbolic_batch_as_one(tmp_path: Path) -> None:
    path = _export(_Mixed(), (1, 3, 24, 40), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert graph_stats(model).macs == measure(_Mixed(), (40, 24)).macs


def test_fingerprint_has_every_field_with_a_value() -> None:
    fingerprint = device_fingerprint()
    assert list(fingerprint) == list(FIELDS)
    assert all(value not in (None, "") for value in fingerprint.values())
    assert fingerprint["onnxruntime"] != NOT_AVAILABLE and fingerprint["cpu_cores_logical"] >= 1


@pytest.mark.parametrize(
    ("line", "watts"),
    [
        ("RAM 2034/3964MB (lfb 1x4MB) CPU [12%@1479,5%@1479] GPU 0%@76 POM_5V_IN 2380/2380 POM_5V_GPU 0/0", 2.38),
        ("RAM 5123/7620MB CPU [3%@729] GR3D_FREQ 0% VDD_IN 4910mW/4910mW VDD_CPU_GPU_CV 595mW/595mW", 4.91),
        ("RAM 2034/3964MB CPU [12%@1479] EMC_FREQ 0%", None),
    ],
)
def test_tegrastats_lines_give_board_input_power(line: str, watts: float | None) -> None:
    assert parse_tegrastats_power_w(line) == watts


def test_power_monitor_says_why_when_nothing_reports() -> None:
    with PowerMonitor() as monitor:
        time.sleep(0.05)
    result = monitor.result(frames=10)
    if result["source"] == NOT_AVAILABLE:
        assert result["reason"]
    else:  # a machine with RAPL/NVML/tegrastats: a real, positive energy figure
        assert result["energy_j"] >= 0 and result["mean_w"] is not None


def test_peak_rss_tracks_a_large_allocation() -> None:
    reset_peak_rss()
    before = peak_rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    after = peak_rss_mb()
    assert before is not None and after is not None and after >= before + 50
    del block


def test_torch_backend_cpu_matches_the_module_and_rejects_gpu_only_options() -> None:
    torch.manual_seed(0)
    net = build_model("espnet-c", num_classes=20).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    with TorchBackend(net, (2, 3, 32, 64), device="cpu", channels_last=True) as backend:
        np.testing.assert_allclose(backend.infer(x), expected, atol=1e-4)
        assert backend.details()["channels_last"] and not backend.details()["cuda_graphs"]
        with pytest.raises(EdgekitError, match="built for input"):
            backend.infer(x[:1])
    for options in ({"precision": "fp16"}, {"cuda_graphs": True}, {"naive": True, "channels_last": True}):
        with pytest.raises(EdgekitError):
            TorchBackend(net, (1, 3, 64, 128), device="cpu", **options)  # type: ignore[arg-type]


def test_authors_loop_discards_the_first_iteration() -> None:
    samples = authors_timing_loop(build_model("espnet-c", num_classes=20), (64, 32), device="cpu", iterations=5)
    assert len(samples) == 4 and all(s > 0 for s in samples)


@CUDA
@pytest.mark.parametrize(("precision", "half_mode"), [("fp32", "half"), ("fp16", "half"), ("fp16", "autocast")])
def test_torch_backend_cuda_graphs_channels_last_and_fp16_agree_with_eager(precision: str, half_mode: str) -> None:
    torch.manual_seed(0)
    net = build_model("espnet", num_classes=20).eval()
    x = np.random.default_rng(0).normal(size=(1, 3, 256, 512)).astype(np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(x)).argmax(1).numpy()
    backend = TorchBackend(net, (1, 3, 256, 512), device="cuda", precision=precision,  # type: ignore[arg-type]
                           half_mode=half_mode, channels_last=True, cuda_graphs=True)  # type: ignore[arg-type]  # fmt: skip
    with backend:
        assert backend.details()["cuda_graphs"] and backend.details()["gpu"]
        first = backend.infer(x)
        assert np.array_equal(first, backend.infer(x))  # graph replay is deterministic on a static buffer
        assert (first.argmax(1) == reference).mean() > (0.999 if precision == "fp32" else 0.98)


def test_cli_bench_errors_are_one_line_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", "--models", "espnet", "--precisions", "fp64", "-o", str(tmp_path / "r.json")]) == 2
    assert "unknown precision 'fp64'" in capsys.readouterr().err
    assert main(["bench", "--bundle", str(tmp_path), "-o", str(tmp_path / "r.json")]) == 2
    assert "not an edgekit bundle" in capsys.readouterr().err


def test_cli_bench_writes_results(int8_bundle: Path, tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    argv = ["bench", "--bundle", str(int8_bundle), "--backend", "onnxruntime", "--budget", "0.5", "--min-runs", "5",
            "--warmup", "1", "--profile-runs", "0", "--pipeline-frames", "0", "--threads", "1",
            "--target", "jetson-nano", "-o", str(output)]  # fmt: skip
    assert main(argv) == 0
    (result,) = load_results(output)["results"]
    assert result["status"] == "ok" and result["pipeline"]["status"] == NOT_AVAILABLE
    assert result["backend_info"]["intra_op_threads"] == 1
    assert result["peak_gmacs"] > 0 and result["fraction_of_peak"].startswith("not available (ran on the CPU")
    assert "profiling off" in result["top_layers"]


def test_bench_torch_backend_with_the_authors_baseline_in_the_same_run(tmp_path: Path) -> None:
    config = BenchConfig(
        models=["espnet-c"], sizes=[(64, 32)], precisions=["fp32", "fp16"], backend="torch", device="cpu",
        rule=StopRule(warmup=1, min_runs=5, budget_s=0.5), pipeline_frames=0, workdir=tmp_path, baseline_iterations=6,
    )  # fmt: skip
    fp32, naive, fp16 = Bench(config, zoo_workloads).run()["results"]
    assert fp32["status"] == "ok" and fp32["backend_info"]["channels_last"]
    assert fp32["graph"]["macs_per_image"] == measure(build_model("espnet-c"), (64, 32)).macs
    assert fp32["device_resident"]["status"] == "ok" and fp32["device_resident"]["fps"] > 0
    assert naive["backend"] == "torch-naive" and naive["latency_ms"]["count"] == 5  # the first run is discarded
    assert fp16["status"] == "skipped" and "CUDA" in fp16["reason"]


def test_bench_zoo_network_exported_on_the_host_runs_on_onnxruntime(tmp_path: Path) -> None:
    """The host side exports the zoo network and counts it on its ONNX graph; the board side measures that file."""
    config = BenchConfig(
        models=["espnet-c"], sizes=[(64, 32)], backend="onnxruntime", rule=StopRule(warmup=1, min_runs=5, budget_s=0.5),
        profile_runs=0, pipeline_frames=0, workdir=tmp_path,
    )  # fmt: skip
    with pytest.raises(EdgekitError, match="zoo models are exported on the host"):
        Bench(config)
    (result,) = Bench(config, zoo_workloads).run()["results"]
    assert result["status"] == "ok" and result["backend"] == "onnxruntime"
    assert result["graph"]["counted_on"] == "FP32 ONNX graph (BN folded)"
    assert result["graph"]["macs_per_image"] == measure(build_model("espnet-c"), (64, 32)).macs
    assert (tmp_path / "espnet-c-64x32-b1-fp32.onnx").is_file()
