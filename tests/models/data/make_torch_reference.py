"""Regenerate this folder's torch data: the reference logits and a .pth written by torch itself.

Run where torch and torchvision are installed (timm too, to cross-check; optional)::

    python tests/models/data/make_torch_reference.py            # torch_resnet_reference.json
    python tests/models/data/make_torch_reference.py --check    # compare, write nothing
    python tests/models/data/make_torch_reference.py --tiny-pth # torch_tiny_state_dict.pth (torch only)

``torch_resnet_reference.json``: torchvision ResNet-18/34 built with ``num_classes=10``,
every ``state_dict`` entry except ``num_batches_tracked`` filled, in order, with the
seeded numbers of `seeded_state_dict`, run in eval mode on `reference_input`. The
tests (tests/models/test_torch_reference.py, no torch) rebuild the same numbers, write
them as a checkpoint, convert it and compare logits. Written as ``json.dumps`` output
with no trailing newline, exactly as recorded.

``torch_tiny_state_dict.pth``: `tiny_state_expected` saved by ``torch.save`` (a real
module's state dict with ``_metadata``, plus a transposed view, a view with a storage
offset, fp16, bf16, int64 and an ``nn.Parameter``), the check that the torch-free
reader (keras_resnet.models.torch_checkpoint) reads what torch really writes.

Only numpy is imported at the top, so the tests can import `seeded_state_dict`,
`reference_input` and `tiny_state_expected` from here without torch.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE_JSON = HERE / "torch_resnet_reference.json"
TINY_PTH = HERE / "torch_tiny_state_dict.pth"
MODELS = ("resnet18", "resnet34")
NUM_CLASSES = 10
STATE_SEED = 123
INPUT_SEED = 7
INPUT_SHAPE = (2, 3, 64, 64)
ABOUT = (
    "torchvision/timm ResNet-18/34 (num_classes=10) filled in state_dict order with seeded numpy numbers "
    "(see tests/models/test_torch_reference.py for the rule), eval-mode logits on a seeded 2x3x64x64 input, "
    "computed on CPU with the versions below. Recorded once on a machine that has torch; our tests need no torch."
)


def seeded_state_dict(keys, seed: int = STATE_SEED) -> dict[str, np.ndarray]:
    """The exact numbers the reference run puts into the torch model, key by key.

    Args:
        keys: ``[[key, shape], ...]`` in ``state_dict`` order (the JSON's ``keys``).
        seed: The numpy seed.

    Returns:
        ``{key: float32 array}``: BatchNorm scales and variances in [0.5, 1.5), means
        N(0, 0.1), everything else N(0, 1/sqrt(fan_in)).
    """
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys:
        shape = tuple(shape)
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            arr = rng.normal(0, 0.1, shape)
        elif key.endswith("bn1.weight") or (".bn" in key and key.endswith("weight")) or "downsample.1.weight" in key:
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arr = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        state[key] = arr.astype(np.float32)
    return state


def reference_input() -> np.ndarray:
    """The seeded NCHW float32 input of the reference run (2x3x64x64, values in [0, 1)).

    Returns:
        The array.
    """
    return np.random.default_rng(INPUT_SEED).random(INPUT_SHAPE).astype(np.float32)


def tiny_state_expected() -> dict[str, np.ndarray]:
    """What reading ``torch_tiny_state_dict.pth`` must give, key by key (dtype included).

    Returns:
        An ordered ``{key: array}``; bf16 comes back widened to float32.
    """
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    return collections.OrderedDict(
        [
            ("conv.weight", (np.arange(54, dtype=np.float32).reshape(2, 3, 3, 3) - 27) / 8),
            ("bn.weight", np.array([1.0, 2.0], np.float32)),
            ("bn.bias", np.array([-0.5, 0.5], np.float32)),
            ("bn.running_mean", np.array([0.25, -0.25], np.float32)),
            ("bn.running_var", np.array([1.5, 2.5], np.float32)),
            ("bn.num_batches_tracked", np.array(100, np.int64)),
            ("transposed", base.T.copy()),
            ("window", base[1:3, 2:5].copy()),
            ("half", np.array([0.5, -1.25, 3.0, 65504.0], np.float16)),
            ("bf16", np.array([1.5, -2.0, 0.15625], np.float32)),
            ("param", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)),
        ]
    )


def write_tiny_pth(path: Path = TINY_PTH) -> Path:
    """Save `tiny_state_expected` with ``torch.save``, as views and dtypes torch really writes.

    Args:
        path: Output file (its stem becomes the zip's top folder, as torch does).

    Returns:
        ``path``.
    """
    import torch

    expected = tiny_state_expected()
    module = torch.nn.Sequential(
        collections.OrderedDict(conv=torch.nn.Conv2d(3, 2, 3, bias=False), bn=torch.nn.BatchNorm2d(2))
    )
    with torch.no_grad():
        for key, value in module.state_dict().items():
            value.copy_(torch.from_numpy(expected[key]))
    state = module.state_dict()  # an OrderedDict with _metadata, as torchvision's files have
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state["transposed"] = base.t()  # non-contiguous: strides (1, 6)
    state["window"] = base[1:3, 2:5]  # same storage, offset 8
    state["half"] = torch.from_numpy(expected["half"])
    state["bf16"] = torch.from_numpy(expected["bf16"]).to(torch.bfloat16)
    state["param"] = torch.nn.Parameter(torch.from_numpy(expected["param"]))
    torch.save(state, path)
    return path


def record_model(name: str) -> dict:
    """Reference keys and logits of one torchvision model (cross-checked with timm if installed).

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.

    Returns:
        ``{"keys": [[key, shape], ...], "logits": [[...], [...]]}``.
    """
    import torch
    import torchvision

    model = getattr(torchvision.models, name)(weights=None, num_classes=NUM_CLASSES)
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    state = {k: torch.from_numpy(v) for k, v in seeded_state_dict(keys).items()}
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and all(k.endswith("num_batches_tracked") for k in result.missing_keys), result
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(reference_input())).numpy()
    try:
        import timm
    except ImportError:
        timm = None
    if timm is not None:
        other = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES)
        other_keys = [[k, list(v.shape)] for k, v in other.state_dict().items()
                      if not k.endswith("num_batches_tracked")]
        assert other_keys == keys, f"timm's {name} keys differ from torchvision's"
        other.load_state_dict(state, strict=False)
        other.eval()
        with torch.no_grad():
            np.testing.assert_allclose(other(torch.from_numpy(reference_input())).numpy(), logits, rtol=1e-5, atol=1e-5)
    return {"keys": keys, "logits": logits.tolist()}


def record() -> dict:
    """The whole reference document, in the JSON's structure.

    Returns:
        ``{"about": ..., "versions": {"torch", "torchvision", "timm"}, "models": {name: record_model(name)}}``.
    """
    import torch
    import torchvision

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:
        timm_version = None
    return {
        "about": ABOUT,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm_version},
        "models": {name: record_model(name) for name in MODELS},
    }


def main(argv=None) -> int:
    """Command line: write (default) or ``--check`` the JSON; ``--tiny-pth`` writes the .pth fixture.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the recorded JSON, write nothing")
    parser.add_argument("--tiny-pth", action="store_true",
                        help="only write torch_tiny_state_dict.pth (needs torch only)")
    args = parser.parse_args(argv)
    if args.tiny_pth:
        print(f"wrote {write_tiny_pth()}")
        return 0
    data = record()
    if args.check:
        recorded = json.loads(REFERENCE_JSON.read_text())
        for name in MODELS:
            assert recorded["models"][name]["keys"] == data["models"][name]["keys"], f"{name}: keys differ"
            np.testing.assert_allclose(
                data["models"][name]["logits"], recorded["models"][name]["logits"], rtol=1e-4, atol=1e-4
            )
        print(f"{REFERENCE_JSON.name} matches torch {data['versions']['torch']}")
        return 0
    REFERENCE_JSON.write_text(json.dumps(data))
    print(f"wrote {REFERENCE_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
