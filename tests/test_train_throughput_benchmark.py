"""benchmarks/train_throughput.py's --interleave machinery (gates, turns, per-round ratios), with
tiny stand-in worker processes instead of training runs."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("train_throughput")


# A stand-in worker: EpochTimes/EpochGate as the real workers use them, each epoch a short sleep,
# every epoch's wall-clock begin and end appended to a shared log, its measured seconds written out.
FAKE_WORKER = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    spec = importlib.util.spec_from_file_location("bench", {script!r})
    bench = importlib.util.module_from_spec(spec); sys.modules["bench"] = bench; spec.loader.exec_module(bench)
    name, fds, epochs, seconds, log, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
    times = bench.EpochTimes(bench.EpochGate(bench.parse_gate_fds(fds)))
    for epoch in range(epochs):
        times.epoch_begin()
        began = time.time()
        time.sleep(seconds)
        with open(log, "a") as handle:
            handle.write(json.dumps([name, epoch, began, time.time()]) + "\\n")
    times.train_end()
    open(out, "w").write(json.dumps(times.seconds()))
    """
)


def fake_worker(bench, tmp_path, name, epochs, seconds):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER.format(script=str(SCRIPT)))

    def command(fds):
        return [sys.executable, str(script), name, f"{fds[0]},{fds[1]}", str(epochs), str(seconds),
                str(tmp_path / "epochs.log"), str(tmp_path / f"{name}.json")]

    worker = bench.GatedWorker(name, command)
    assert worker.next_report() == "start"
    return worker


EPOCH = 0.3  # seconds of sleep per stand-in epoch


def test_interleaved_workers_take_turns_and_time_only_their_own_epochs(bench, tmp_path):
    epochs = 4
    workers = [fake_worker(bench, tmp_path, name, epochs, EPOCH) for name in ("a", "b")]
    try:
        rounds = bench.run_turns(workers, epochs, log=lambda line: None)
        assert [w.process.wait(timeout=30) for w in workers] == [0, 0]
    finally:
        for worker in workers:
            worker.close()

    # The order alternates round by round, as the orchestrator promises.
    assert [[name for name, _ in reports] for reports in rounds] == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]
    # No two epochs ever overlapped in time: the log, sorted by begin, alternates cleanly.
    entries = sorted((json.loads(line) for line in (tmp_path / "epochs.log").read_text().splitlines()), key=lambda e: e[2])
    assert [e[0] for e in entries] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    for earlier, later in zip(entries, entries[1:]):
        assert earlier[3] <= later[2]
    # Each worker's epochs exclude the time spent waiting for the other's turn: counting the wait
    # would make every second epoch last at least two epochs (0.6 s).
    for name in ("a", "b"):
        measured = json.loads((tmp_path / f"{name}.json").read_text())
        reported = [s for reports in rounds for n, s in reports if n == name]
        assert len(measured) == len(reported) == epochs
        assert all(EPOCH <= s < 1.8 * EPOCH for s in measured + reported), (name, measured, reported)


def test_a_worker_that_dies_is_named(bench, tmp_path):
    worker = bench.GatedWorker("kresnet", lambda fds: [sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        with pytest.raises(SystemExit, match=r"mode kresnet stopped \(exit code 3\)"):
            worker.next_report()
    finally:
        worker.close()


def test_without_pipes_the_gate_never_waits(bench):
    times = bench.EpochTimes(bench.EpochGate(None))
    for _ in range(3):
        times.epoch_begin()
    times.train_end()
    assert len(times.seconds()) == 3 and all(s >= 0 for s in times.seconds())


def result(mode, repeat, seconds):
    return {"mode": mode, "repeat": repeat, "epoch_seconds": seconds, "images_per_second": 100 * len(seconds) / sum(seconds)}


def test_per_round_ratios_pair_the_epochs_of_one_round(bench):
    results = [result("kresnet", 1, [1.0, 2.0]), result("torch", 1, [2.0, 2.0]),
               result("kresnet", 2, [4.0]), result("torch", 2, [1.0])]
    # kresnet/torch images/s per round = torch seconds / kresnet seconds: 2.0, 1.0 (repeat 1), 0.25 (repeat 2)
    assert bench.round_ratios(results, "kresnet", "torch") == [2.0, 1.0, 0.25]
    summary = bench.summarise(results, ["kresnet", "torch"], per_round=True)
    assert summary["round_ratios"]["kresnet/torch"] == {"median": 1.0, "min": 0.25, "max": 2.0, "rounds": 3}
    assert "round_ratios" not in bench.summarise(results, ["kresnet", "torch"])


def test_interleave_flag_and_gate_fds_reach_the_worker(bench):
    args = bench.parse_args(["--modes", "bare,torch", "--interleave"])
    assert args.interleave
    command = bench.worker_command(args, "torch", 1, Path("r.json"), Path("images"), gate_fds=(7, 9))
    assert command[command.index("--gate-fds") + 1] == "7,9"
    assert bench.parse_gate_fds("7,9") == (7, 9) and bench.parse_gate_fds(None) is None
    assert "--gate-fds" not in bench.worker_command(args, "torch", 1, Path("r.json"), Path("images"))


def test_width_multiplier_reaches_every_worker_and_must_be_positive(bench, capsys):
    args = bench.parse_args(["--modes", "bare,kresnet,torch", "--width-multiplier", "2"])
    assert args.width_multiplier == 2.0
    for mode in ("bare", "kresnet", "torch"):
        command = bench.worker_command(args, mode, 1, Path("r.json"), Path("images"))
        assert bench.parse_args(command[2:]).width_multiplier == 2.0
    assert bench.parse_args([]).width_multiplier == 1.0
    with pytest.raises(SystemExit):
        bench.parse_args(["--width-multiplier", "0"])
    assert "--width-multiplier must be > 0. Received: 0.0" in capsys.readouterr().err


def test_width_multiplier_must_keep_the_cifar_stages_doubling(bench, capsys):
    assert bench.cifar_widths(1.5) == [24, 48, 96]
    assert bench.parse_args(["--modes", "torch", "--width-multiplier", "1.5"]).width_multiplier == 1.5
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "torch", "--width-multiplier", "1.3"])
    assert "gives stages of 21/42/83 channels" in capsys.readouterr().err
    # ImageNet ResNets have projection shortcuts: any width builds.
    assert bench.parse_args(["--modes", "bare", "--model", "resnet18", "--width-multiplier", "1.3"]).width_multiplier == 1.3


def test_bare_tfdata_input_with_and_without_the_autotune_thread(bench):
    import numpy as np

    images, labels = np.zeros((6, 4, 4, 3), "uint8"), np.zeros(6, "int64")
    assert bench.bare_dataset(images, labels, 4).options().autotune.enabled is not False
    plain = bench.bare_dataset(images, labels, 4, autotune=False)
    assert plain.options().autotune.enabled is False
    assert [len(b[0]) for b in plain] == [4, 2]
    args = bench.parse_args(["--modes", "bare,torch", "--bare-input", "tfdata_no_autotune"])
    command = bench.worker_command(args, "bare", 1, Path("r.json"), Path("images"))
    assert command[command.index("--bare-input") + 1] == "tfdata_no_autotune"
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "bare", "--bare-input", "tfdata_no_autotune", "--backend", "jax"])
