"""The main job's code path (`keras-zoo train` on the bundled digits), at a tiny setting."""
import json
import os

import numpy as np
import pytest

from keras_zoo import cli
from keras_zoo.backend import keras
from keras_zoo.data import bundled
from keras_zoo.data.augment import random_shift
from keras_zoo.training.config import FitConfig
from keras_zoo.training.fit import train


def test_digits_are_the_real_uci_digits_split_without_overlap():
    x_train, y_train, x_test, y_test, names = bundled.load("digits", resolution=16)
    assert x_train.shape == (1438, 16, 16, 3) and x_test.shape == (359, 16, 16, 3)
    assert names == [str(d) for d in range(10)] and set(y_test) == set(range(10))
    assert x_train.min() >= -1.0 and x_train.max() <= 1.0
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test)
    with pytest.raises(ValueError, match="bundled datasets: digits"):
        bundled.load("imagenet")


def test_random_shift_moves_content_and_keeps_shape():
    image = np.zeros((8, 8, 1), "float32")
    image[3, 3] = 1.0
    shifted = [np.asarray(random_shift(image, 2, seed=s)) for s in range(20)]
    assert all(s.shape == (8, 8, 1) and s.sum() in (0.0, 1.0) for s in shifted)
    positions = {tuple(np.argwhere(s[..., 0] == 1.0)[0]) for s in shifted if s.sum()}
    assert len(positions) > 1 and all(abs(r - 3) <= 2 and abs(c - 3) <= 2 for r, c in positions)
    assert np.array_equal(np.asarray(random_shift(image, 0)), image)


def test_training_learns_and_saves_a_loadable_model(tmp_path):
    cfg = FitConfig(epochs=4, resolution=16, output_dir=str(tmp_path))
    report = train(cfg, verbose=0)
    assert report["test_top1"] > 0.3, report  # chance is 0.1; the full main job reaches ~0.96
    saved = keras.models.load_model(report["saved_model"])
    assert saved.output.shape[-1] == 10
    with open(os.path.join(tmp_path, "report.json")) as f:
        assert json.load(f)["test_top1"] == report["test_top1"]
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_cli_train_reports_bad_input_clearly(capsys, tmp_path):
    assert cli.main(["train", "--dataset", "cifar11", "--output-dir", str(tmp_path)]) == 2
    assert "bundled datasets: digits" in capsys.readouterr().err
    assert cli.main(["train", "--model", "tinynet_q", "--output-dir", str(tmp_path)]) == 2
    assert "Did you mean" in capsys.readouterr().err
