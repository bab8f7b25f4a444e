"""Activation statistics from calibration images, and the symmetric ranges (amax) each method derives from them.

Statistics are streamed image by image (a histogram of |x| per tensor that widens as larger values arrive), so
memory does not grow with the number of calibration images — unlike onnxruntime's histogram calibrators, which
keep every intermediate output of every image until the end. The same ranges feed the Q/DQ scales and the
TensorRT calibration cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.quant.options import METHODS

NUM_BINS = 2048
PERCENTILE = 99.99
HISTOGRAM_SAMPLES = 1 << 18  # per tensor and image: a strided sample keeps the tail (amax is always exact)


@dataclass
class TensorHistogram:
    """Histogram of |x| over [0, amax] with NUM_BINS bins; widened (re-binned) when a larger value arrives."""

    amax: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BINS, np.float64))

    def add(self, values: np.ndarray) -> None:
        flat = values.reshape(-1)
        peak = float(max(flat.max(), -flat.min())) if flat.size else 0.0
        flat = np.abs(flat[:: max(1, flat.size // HISTOGRAM_SAMPLES)])
        if peak > self.amax:
            if self.amax > 0:
                self.counts = _rebinned(self.counts, self.amax, peak)
            self.amax = peak
        if self.amax > 0:
            self.counts += np.histogram(flat, bins=NUM_BINS, range=(0, self.amax))[0]

    def percentile_amax(self, percentile: float = PERCENTILE) -> float:
        total = self.counts.sum()
        if total == 0 or self.amax == 0:
            return self.amax
        index = int(np.searchsorted(np.cumsum(self.counts), total * percentile / 100.0))
        return min(self.amax, (index + 1) * self.amax / NUM_BINS)

    def entropy_amax(self, quantized_bins: int = 128, stride: int = 16) -> float:
        """TensorRT's EntropyCalibration2 threshold: minimise KL(P || Q) of the clipped |x| histogram."""
        counts = self.counts
        if counts.sum() == 0 or self.amax == 0:
            return self.amax
        best_kl, best_index = np.inf, NUM_BINS
        for index in range(quantized_bins, NUM_BINS + 1, stride):
            reference = counts[:index].copy()
            reference[-1] += counts[index:].sum()
            sliced = counts[:index]
            base, extra = divmod(index, quantized_bins)  # np.array_split's chunks: the first `extra` one longer
            lengths = np.full(quantized_bins, base) + (np.arange(quantized_bins) < extra)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            nonzero = sliced > 0
            sums = np.add.reduceat(sliced, starts)
            filled = np.maximum(np.add.reduceat(nonzero.astype(np.float64), starts), 1.0)
            expanded = np.repeat(sums / filled, lengths) * nonzero
            p = reference / reference.sum()
            q_sum = expanded.sum()
            if q_sum == 0:
                continue
            q = expanded / q_sum
            mask = p > 0
            kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
            if kl < best_kl:
                best_kl, best_index = kl, index
        return best_index * self.amax / NUM_BINS


def _rebinned(counts: np.ndarray, amax: float, new_amax: float) -> np.ndarray:
    """``counts`` over [0, amax] moved onto NUM_BINS bins over [0, new_amax >= amax] (each bin by its centre)."""
    centres = (np.arange(NUM_BINS) + 0.5) * (amax / NUM_BINS)
    return np.histogram(centres, bins=NUM_BINS, range=(0, new_amax), weights=counts)[0]


def merge_histograms(histograms: Iterable[TensorHistogram]) -> TensorHistogram:
    """The histogram of the union of the values of ``histograms``, on the widest of their ranges."""
    filled = [h for h in histograms if h.amax > 0]
    if not filled:
        return TensorHistogram()
    peak = max(h.amax for h in filled)
    return TensorHistogram(peak, np.sum([_rebinned(h.counts, h.amax, peak) for h in filled], axis=0))


@dataclass
class ActivationStats:
    """Per-tensor histograms of everything the calibration pass observed."""

    histograms: dict[str, TensorHistogram]
    images: int

    @classmethod
    def merged(cls, parts: Sequence[ActivationStats]) -> ActivationStats:
        """The statistics of every image of ``parts`` together (for ranges calibrated on several parts)."""
        names = sorted({name for part in parts for name in part.histograms})
        histograms = {
            name: merge_histograms(p.histograms[name] for p in parts if name in p.histograms) for name in names
        }
        return cls(histograms, sum(p.images for p in parts))

    def amax(self, method: str) -> dict[str, float]:
        if method not in METHODS:
            raise EdgekitError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
        result = {}
        for name, hist in self.histograms.items():
            if method == "minmax":
                result[name] = hist.amax
            elif method == "percentile":
                result[name] = hist.percentile_amax()
            else:
                result[name] = hist.entropy_amax()
        return result


def collect_stats(
    session: object, input_name: str, tensor_names: list[str], inputs: Iterable[np.ndarray]
) -> ActivationStats:
    """Run the session (whose outputs include ``tensor_names``) over the inputs and histogram each tensor."""
    histograms = {name: TensorHistogram() for name in tensor_names}
    count = 0
    for x in inputs:
        outputs = session.run(tensor_names, {input_name: x})  # type: ignore[attr-defined]
        for name, value in zip(tensor_names, outputs, strict=True):
            if value.dtype.kind == "f":
                histograms[name].add(value)
        count += 1
    if count == 0:
        raise EdgekitError("the calibration set is empty; give at least one image")
    return ActivationStats(histograms={k: v for k, v in histograms.items() if v.counts.sum() > 0}, images=count)
