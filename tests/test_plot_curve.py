"""train.plot_curve: the training-curve PNG from metrics.jsonl."""

import json

import pytest

from train import plot_curve

pytest.importorskip("matplotlib")


def test_plot_reads_each_step_once_and_writes_a_png(tmp_path):
    wd = tmp_path / "run"
    wd.mkdir()
    recs = [{"step": s, "loss": 100.0 / s} for s in range(25, 501, 25)]
    recs += [{"step": 250, "dev_f1": 0.2}, {"step": 500, "dev_f1": 0.3},
             {"step": 250, "loss": 1.0}]  # a step rewritten after a resume: the last wins
    (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    loss, dev = plot_curve.read_metrics([wd])
    assert [s for s, _ in loss] == list(range(25, 501, 25))
    assert dict(loss)[250] == 1.0 and dev == [(250, 0.2), (500, 0.3)]
    out = tmp_path / "curve.png"
    assert plot_curve.main([str(wd), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_errors_are_one_line(tmp_path, capsys):
    assert plot_curve.main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no metrics.jsonl" in err and "\n" not in err
