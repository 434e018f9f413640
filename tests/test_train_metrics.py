"""The loss plot's smoothing, against hand-computed values, and the plot itself."""

from __future__ import annotations

import pytest

from opencodegen.train.metrics import plot_stage, smoothed


def test_smoothing_is_a_bias_corrected_ema():
    assert smoothed([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # a constant stays put from the first point
    # 0.1*1 / 0.1 = 1; (0.9*0.1 + 0.1*3) / (1 - 0.81) = 0.39 / 0.19
    assert smoothed([1.0, 3.0]) == pytest.approx([1.0, 0.39 / 0.19])
    assert smoothed([]) == []


def test_plot_stage_writes_a_png(tmp_path):
    records = [{"stage": "mono", "step": i, "loss": 5.0 - 0.01 * i} for i in range(1, 50)]
    records.append({"stage": "mono", "step": 49, "val_loss": 4.6})
    out = tmp_path / "loss.png"
    plot_stage(records, "mono", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))
