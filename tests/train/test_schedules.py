"""Learning-rate schedules: warmup, step, cosine, one-cycle and batch scaling."""

import types

import pytest

from keras_resnet.train.schedules import WarmupSchedule, build_schedule, scaled_learning_rate


def lr(schedule, step):
    return float(schedule(step))


def test_linear_warmup_then_cosine():
    s = WarmupSchedule(1.0, total_steps=110, warmup_steps=10, decay="cosine", start_factor=0.0)
    assert lr(s, 0) == pytest.approx(0.0)
    assert lr(s, 5) == pytest.approx(0.5)
    assert lr(s, 10) == pytest.approx(1.0)
    assert lr(s, 60) == pytest.approx(0.5, abs=1e-6)
    assert lr(s, 110) == pytest.approx(0.0, abs=1e-6)


def test_step_schedule_he_et_al():
    s = WarmupSchedule(0.4, total_steps=90, decay="step", boundaries=(30, 60, 80), decay_rate=0.1)
    assert [lr(s, x) for x in (0, 29, 30, 60, 80, 89)] == pytest.approx([0.4, 0.4, 0.04, 0.004, 0.0004, 0.0004])


def test_one_cycle_rises_then_falls_linearly():
    s = WarmupSchedule(1.0, total_steps=100, warmup_steps=20, decay="one_cycle", start_factor=0.1, final_factor=0.0)
    assert lr(s, 0) == pytest.approx(0.1)
    assert lr(s, 20) == pytest.approx(1.0)
    assert lr(s, 60) == pytest.approx(0.5)
    assert lr(s, 100) == pytest.approx(0.0, abs=1e-6)


def test_serialisation_round_trip():
    s = WarmupSchedule(0.1, total_steps=50, warmup_steps=5, decay="step", boundaries=(20,))
    again = WarmupSchedule.from_config(s.get_config())
    assert [lr(again, x) for x in (0, 10, 30)] == pytest.approx([lr(s, x) for x in (0, 10, 30)])


def test_batch_scaling_and_epoch_conversion():
    assert scaled_learning_rate(0.1, 1024, 256) == pytest.approx(0.4)
    assert scaled_learning_rate(0.1, 1024, None) == pytest.approx(0.1)
    config = types.SimpleNamespace(name="step", warmup_epochs=1.0, boundaries=(2.0,), decay_rate=0.1,
                                   warmup_start_factor=0.0, final_factor=0.0)
    s = build_schedule(config, peak_lr=1.0, epochs=4, steps_per_epoch=10)
    assert (s.warmup_steps, s.boundaries, s.total_steps) == (10, (20,), 40)
    short = build_schedule(config, peak_lr=1.0, epochs=1, steps_per_epoch=10)
    assert short.warmup_steps == 5  # capped at half the schedule


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        WarmupSchedule(0.1, 10, decay="exp")
    with pytest.raises(ValueError, match="total_steps"):
        WarmupSchedule(0.1, 0)
