"""benchmarks/layer_kernels.py: the layer inventory, the TensorFlow side's layers and the summary
arithmetic (no timing asserted; the PyTorch side needs torch, which is not a kresnet dependency)."""

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("layer_kernels")


@pytest.mark.parametrize("depth", [20, 32, 56])
def test_items_count_every_convolution_and_batchnorm_of_the_net(bench, depth):
    import keras_resnet as kr

    model = kr.build_resnet(f"resnet{depth}", num_classes=10, input_shape=(32, 32, 3))
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    items = bench.items_for(depth)
    assert sum(i.count for i in items if i.kind == "conv") == len(convs) == depth - 1
    assert sum(i.count for i in items if i.kind == "bn_relu") == len(norms)
    assert [i.kind for i in items].count("step") == 1 and items[-1].kind == "step"
    assert sum(i.stem for i in items) == 1
    # Every (input size, in -> out channels, stride) of the net's convolutions is an item, with its count;
    # a stride-2 convolution sees its input after the explicit 1-pixel padding.
    shapes = {}
    for layer in convs:
        stride = layer.strides[0]
        key = (layer.input.shape[1] - (2 if stride == 2 else 0), layer.input.shape[-1], layer.filters, stride)
        shapes[key] = shapes.get(key, 0) + 1
    assert shapes == {(i.hw, i.cin, i.cout, i.stride): i.count for i in items if i.kind == "conv"}


def test_tensorflow_layers_give_the_gradients_training_needs(bench):
    item = bench.Item("conv", 8, 4, 6, 2, 1)
    y, (dx, dw) = bench.tensorflow_runner(item, 2, 20)()
    assert tuple(y.shape) == (2, 4, 4, 6) and tuple(dx.shape) == (2, 8, 8, 4) and tuple(dw.shape) == (3, 3, 4, 6)

    stem = bench.Item("conv", 8, 3, 5, 1, 1, stem=True)
    y, grads = bench.tensorflow_runner(stem, 2, 20)()
    assert tuple(y.shape) == (2, 8, 8, 5) and [tuple(g.shape) for g in grads] == [(3, 3, 3, 5)]  # no input gradient

    z, (dx, dscale, doffset) = bench.tensorflow_runner(bench.Item("bn_relu", 4, 3, 3, 1, 1), 2, 20)()
    assert float(z.numpy().min()) == 0.0  # ReLU after a zero-mean normalisation
    assert tuple(dx.shape) == (2, 4, 4, 3) and tuple(dscale.shape) == tuple(doffset.shape) == (3,)
    # Training mode normalises with the batch statistics, whose gradient sums to zero per channel
    # (with the moving statistics, as in inference, it would not).
    per_channel = dx.numpy().sum(axis=(0, 1, 2))
    assert abs(per_channel).max() < 1e-4 * abs(dx.numpy()).sum()


def test_worker_runs_every_item_without_gates(bench):
    args = bench.parse_args(["--worker", "tensorflow", "--batch-size", "2", "--iterations", "1", "--rounds", "1"])
    bench.run_worker(args)  # no --gate-fds: every turn starts at once


def test_summary_arithmetic(bench):
    items = [bench.Item("conv", 32, 16, 16, 1, 6), bench.Item("bn_relu", 32, 16, 16, 1, 7), bench.Item("step", 32, 3, 10, 1, 1)]
    # Two rounds per item, 10 runs per turn; PyTorch takes 20 ms per conv, 5 per bn_relu, 300 per step.
    torch_seconds = [0.2, 0.05, 3.0]
    tf_seconds = [[0.22, 0.05, 3.3], [0.18, 0.06, 2.7]]
    rounds = []
    for r in range(2):
        for index in range(3):
            rounds.append([["tensorflow", tf_seconds[r][index]], ["torch", torch_seconds[index]]])
    summary = bench.summarise(rounds, items, iterations=10)
    conv = summary["items"][0]
    assert conv["ms"] == pytest.approx({"tensorflow": 20.0, "torch": 20.0})
    assert conv["ratio_tf_over_torch"] == pytest.approx({"median": 1.0, "min": 0.9, "max": 1.1})
    bn = summary["items"][1]
    assert bn["ratio_tf_over_torch"]["max"] == pytest.approx(1.2)
    step = summary["per_step_ms"]
    assert step["torch"] == pytest.approx({"conv": 120.0, "bn_relu": 35.0, "step": 300.0, "rest": 145.0})
    assert step["tensorflow"]["bn_relu"] == pytest.approx(7 * 5.5)
    assert step["ratio_tf_over_torch"]["step"] == pytest.approx(1.0)


def test_rejects_a_model_that_is_not_a_cifar_resnet(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", "resnet50"])
    assert "CIFAR ResNet" in capsys.readouterr().err


def test_kinds_choose_the_items_and_the_summary_keeps_to_them(bench, capsys):
    args = bench.parse_args(["--kinds", "step"])
    assert [item.kind for item in bench.items_for(20, args.kind_list)] == ["step"]
    summary = bench.summarise([[["tensorflow", 4.0], ["torch", 5.0]]], bench.items_for(20, ["step"]), iterations=10)
    assert summary["per_step_ms"]["tensorflow"] == {"step": 400.0}
    assert summary["per_step_ms"]["ratio_tf_over_torch"] == pytest.approx({"step": 0.8})
    with pytest.raises(SystemExit):
        bench.parse_args(["--kinds", "conv,pool"])
    assert "--kinds" in capsys.readouterr().err
