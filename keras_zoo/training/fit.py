"""The single-device training run behind `keras-zoo train` on a bundled dataset (the main job).

Builds a registered model, trains it with `model.fit` on a dataset that ships offline, evaluates
top-1 on the held-out split and writes the model. The multi-device trainer (tf.distribute loop,
checkpoints, schedules of the papers) is the training issue's; this is the smallest real run.
"""
import json
import os
import time

import numpy as np

from keras_zoo import registry
from keras_zoo.backend import keras, tf
from keras_zoo.data import bundled
from keras_zoo.data.augment import random_shift
from keras_zoo.training.config import FitConfig


def train(cfg: FitConfig, model_overrides=None, verbose=1):
    """Trains `cfg.model` on the bundled `cfg.dataset`; returns a report dict (top-1 included)."""
    keras.utils.set_random_seed(cfg.seed)
    x_train, y_train, x_test, y_test, class_names = bundled.load(cfg.dataset, cfg.resolution, seed=cfg.seed)
    overrides = {"resolution": cfg.resolution, "num_classes": len(class_names), **cfg.model_overrides,
                 **(model_overrides or {})}
    model = registry.create_model(cfg.model, **overrides)
    steps = cfg.epochs * int(np.ceil(len(x_train) / cfg.batch_size))
    shift = int(round(cfg.resolution * cfg.shift_fraction))
    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                .shuffle(len(x_train), seed=cfg.seed, reshuffle_each_iteration=True)
                .map(lambda x, y: (random_shift(x, shift, fill_value=-1.0), y), num_parallel_calls=tf.data.AUTOTUNE)
                .batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.time()
    history = model.fit(train_ds, epochs=cfg.epochs, verbose=verbose, shuffle=False)  # shuffled by train_ds
    seconds = time.time() - start
    logits = model.predict(x_test, batch_size=256, verbose=0)
    top1 = float(np.mean(np.argmax(logits, -1) == y_test))
    os.makedirs(cfg.output_dir, exist_ok=True)
    model_path = os.path.join(cfg.output_dir, f"{cfg.model}.keras")
    tmp_path = model_path + ".tmp.keras"
    model.save(tmp_path)
    os.replace(tmp_path, model_path)  # atomic: a killed run never leaves a half-written model
    report = {"model": cfg.model, "dataset": cfg.dataset, "train_examples": len(x_train),
              "test_examples": len(x_test), "epochs": cfg.epochs, "train_seconds": round(seconds, 1),
              "final_train_loss": float(history.history["loss"][-1]), "test_top1": top1,
              "saved_model": model_path}
    with open(os.path.join(cfg.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report
