#!/usr/bin/env bash
# The whole test suite, in its two Keras modes: Keras 3, then tf_keras (TF_USE_LEGACY_KERAS=1,
# the Keras that TFMOT quantizes) in a second pytest process. Extra arguments go to both pytest runs.
source "$(dirname "$0")/setup_env.sh" test
status=0
echo "== pytest, Keras 3"
python -m pytest -m "not tf_keras_only" "$@" || status=$?
echo "== pytest, tf_keras (TF_USE_LEGACY_KERAS=1)"
TF_USE_LEGACY_KERAS=1 python -m pytest -m "both_keras or tf_keras_only" "$@" || status=$?
exit $status
