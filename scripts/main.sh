#!/usr/bin/env bash
# The main job: train the default model on the bundled dataset and print its test accuracy.
# Extra arguments go to `keras-zoo train` (e.g. --epochs 5, or model overrides like width=0.5).
source "$(dirname "$0")/setup_env.sh" train
keras-zoo train --quiet "$@"
