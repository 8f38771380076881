"""benchmarks/tfdata_autotune.py: the two variants' options, the teardown clock and the summary,
on a tiny model and an in-memory dataset (no CIFAR-10, no timing asserted)."""

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("tfdata_autotune")


def test_variants_set_the_autotune_option_on_top(bench):
    import tensorflow as tf

    base = tf.data.Dataset.range(4).with_options(_autotune(False))
    assert bench.with_autotune(base, True).options().autotune.enabled is True
    assert bench.with_autotune(base, False).options().autotune.enabled is False


def _autotune(enabled):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = enabled
    return options


def test_timed_evaluate_counts_batches_and_a_teardown_after_the_last(bench):
    import keras
    import numpy as np
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((np.zeros((10, 2), "float32"), np.zeros(10, "int64"))).batch(4)
    timing = bench.timed_evaluate(model, data)
    assert timing["batches"] == 3
    assert 0.0 <= timing["teardown_seconds"] < timing["seconds"]  # from the last batch on, not from the start


def test_summary_medians_stall_count_and_per_round_ratio(bench):
    rounds = [
        {"autotune_off": {"seconds": 10.0, "teardown_seconds": 0.0}, "autotune_on": {"seconds": 20.0, "teardown_seconds": 9.9}},
        {"autotune_off": {"seconds": 11.0, "teardown_seconds": 0.1}, "autotune_on": {"seconds": 11.0, "teardown_seconds": 0.2}},
        {"autotune_off": {"seconds": 12.0, "teardown_seconds": 0.0}, "autotune_on": {"seconds": 9.0, "teardown_seconds": 0.0}},
    ]
    summary = bench.summarise(rounds)
    assert summary["autotune_off"]["median_seconds"] == 11.0
    assert summary["autotune_on"]["median_seconds"] == 11.0
    assert summary["autotune_on"]["max_teardown_seconds"] == 9.9
    assert summary["autotune_on"]["rounds_with_teardown_over_1s"] == 1
    assert summary["autotune_off"]["rounds_with_teardown_over_1s"] == 0
    assert summary["ratio_on_over_off"] == {"median": 1.0, "min": 0.75, "max": 2.0}
