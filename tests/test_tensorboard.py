"""TensorBoard logging: scalars per epoch, decoder grid images, and latents with thumbnails for the Projector."""

import re

import pytest
from click.testing import CliRunner

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from latentatlas.cli import main  # noqa: E402


def test_train_logs_to_tensorboard(tmp_path):
    logdir = tmp_path / "tb"
    r = CliRunner().invoke(main, ["train", "--preset", "deep-s2", "--data", "mnist-5k", "--epochs", "2",
                                  "--out", str(tmp_path / "run"), "--tensorboard", str(logdir)])
    assert r.exit_code == 0, r.output
    assert f"TensorBoard logs: {logdir} (view them: tensorboard --logdir {logdir})" in r.output
    events = EventAccumulator(str(logdir), size_guidance={"images": 0}).Reload()
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
    assert len(events.Scalars("loss/test")) == 2
    assert "decoder_grid/equirectangular" in events.Tags()["images"]
    projector = (logdir / "projector_config.pbtxt").read_text()
    assert "test_latents" in projector and "sprite" in projector
    paths = dict(re.findall(r'(\w+_path): "([^"]+)"', projector))  # the files TensorBoard will open
    rows = (logdir / paths["tensor_path"]).read_text().splitlines()
    assert len(rows) == 1000 and len(rows[0].split("\t")) == 3
    assert len((logdir / paths["metadata_path"]).read_text().splitlines()) == 1000
    assert (logdir / paths["image_path"]).stat().st_size > 10_000
