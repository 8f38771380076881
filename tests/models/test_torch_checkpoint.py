"""The torch-free ``.pth`` reader: torch.save's format read with numpy, hostile pickles refused unrun.

Files come from ``tests/helpers/torch_pth.py`` (torch.save's zip format written opcode by
opcode, without torch) and from ``data/torch_tiny_state_dict.pth``, written by torch 2.13
itself (``data/make_torch_reference.py --tiny-pth``).
"""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from torch_pth import Build, Call, Global, PersistentId, TensorView, pickle_bytes, write_pth  # tests/helpers
from torchvision_state import reference_script

from keras_resnet.models import torch_checkpoint as TC

DATA = Path(__file__).parent / "data"




def assert_same(got: dict, expected: dict):
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_reads_a_file_written_by_torch_itself():
    """torch 2.13's own output: a module state dict (with _metadata), views, fp16, bf16, int64, Parameter."""
    loaded = TC.read_pth(DATA / "torch_tiny_state_dict.pth")
    assert_same(TC.state_dict_arrays(loaded), reference_script().tiny_state_expected())
    assert loaded._metadata["bn"] == {"version": 2}  # the BUILD opcode set it, as torch.load does


def test_reads_dtypes_views_offsets_and_shared_storages(tmp_path):
    rng = np.random.default_rng(0)
    storage = np.arange(30, dtype=np.float32)
    bf16_values = np.array([1.5, -2.0, 0.15625, 2.0**100], np.float32)  # exact in bfloat16
    state = {
        "conv1.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "bn1.num_batches_tracked": np.array(12345678901, np.int64),
        "half": rng.normal(size=(2, 5)).astype(np.float16),
        "double": rng.normal(size=3),
        "ints": np.array([1, -2, 3], np.int32),
        "mask": np.array([True, False, True]),
        # Two tensors over one storage: a transposed view and a window with an offset.
        "transposed": TensorView(storage, 0, (5, 6), (1, 5), key="shared"),
        "window": TensorView(storage, 7, (2, 3), (5, 1), key="shared"),
        "empty": np.zeros((0, 4), np.float32),
        "bf16": TensorView((bf16_values.view(np.uint32) >> 16).astype(np.uint16), 0, (4,), (1,),
                           storage_type="BFloat16Storage"),
        "param": Call(Global("torch._utils", "_rebuild_parameter"), (np.ones((2, 2), np.float32), True, {})),
    }
    path = write_pth(tmp_path / "state.pth", state)
    got = TC.read_pth(path)
    expected = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    expected["transposed"] = storage.reshape(6, 5).T
    expected["window"] = storage[7:22].reshape(3, 5)[:2, :3]
    expected["bf16"] = bf16_values
    expected["param"] = np.ones((2, 2), np.float32)
    assert_same(got, {k: expected[k] for k in state})
    assert got["bn1.num_batches_tracked"].item() == 12345678901


def test_big_endian_storages_and_another_archive_name(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(7, np.int64)}
    path = write_pth(tmp_path / "big.pth", state, archive="resnet18-f37072fd", byteorder="big")
    assert_same(TC.read_pth(path), state)
    old = write_pth(tmp_path / "old.pth", state, byteorder=None)  # no byteorder record: little-endian
    assert_same(TC.read_pth(old), state)


def test_wrapped_state_dict_is_unwrapped(tmp_path):
    path = write_pth(tmp_path / "ckpt.pth", {"epoch": 3, "state_dict": {"fc.bias": np.ones(2, np.float32)}})
    assert list(TC.state_dict_arrays(TC.read_pth(path))) == ["fc.bias"]
    with pytest.raises(TC.TorchCheckpointError, match="holds no tensors"):
        TC.state_dict_arrays(TC.read_pth(write_pth(tmp_path / "none.pth", {"epoch": 3})))


@pytest.mark.parametrize(
    "module, name",
    [("posix", "system"), ("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")],
)
def test_foreign_global_is_refused_without_running(tmp_path, module, name):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if name in ("system", "Popen") else f"open({str(marker)!r}, 'w')"
    state = {
        "conv1.weight": np.ones((2, 3), np.float32),  # a valid tensor first: the refusal is mid-file
        "evil": Call(Global(module, name), (command,)),
    }
    path = write_pth(tmp_path / "evil.pth", state)
    with pytest.raises(TC.UnsafeCheckpointError) as info:
        TC.read_pth(path)
    message = str(info.value)
    assert str(path) in message and f"'{module}.{name}'" in message and "torch._utils._rebuild_tensor_v2" in message
    assert not marker.exists()


def test_build_cannot_retarget_the_shared_stand_ins(tmp_path):
    """BUILD on an allowed global (set its dtype / function) fails; later loads are unaffected."""
    hostile = {
        "torch.FloatStorage": Build(Global("torch", "FloatStorage"), {"dtype": "float16"}),
        "torch._utils._rebuild_tensor_v2": Build(Global("torch._utils", "_rebuild_tensor_v2"), (None, {"function": 1})),
    }
    for target, value in hostile.items():
        path = write_pth(tmp_path / f"{target}.pth", {"x": value})
        with pytest.raises(TC.TorchCheckpointError, match=f"{path}: a pickle may not change {target}"):
            TC.read_pth(path)
    state = {"w": np.arange(4, dtype=np.float32)}
    assert_same(TC.read_pth(write_pth(tmp_path / "ok.pth", state)), state)


def test_tensor_outside_its_storage_is_refused(tmp_path):
    path = write_pth(tmp_path / "oob.pth", {"w": TensorView(np.zeros(6, np.float32), 2, (2, 3), (3, 1))})
    with pytest.raises(TC.TorchCheckpointError, match=r"reaches element 7 of storage '0', which holds 6"):
        TC.read_pth(path)
    negative = write_pth(tmp_path / "neg.pth", {"w": TensorView(np.zeros(6, np.float32), 0, (2,), (-1,))})
    with pytest.raises(TC.TorchCheckpointError, match="invalid layout"):
        TC.read_pth(negative)
    bomb = write_pth(tmp_path / "bomb.pth", {"w": TensorView(np.zeros(1, np.float32), 0, (1 << 20, 1 << 20), (0, 0))})
    with pytest.raises(TC.TorchCheckpointError, match=r"would expand storage '0' of 1 elements to 1099511627776"):
        TC.read_pth(bomb)
    expanded = write_pth(tmp_path / "expanded.pth", {"w": TensorView(np.arange(3, dtype=np.float32), 0, (2, 3), (0, 1))})
    np.testing.assert_array_equal(TC.read_pth(expanded)["w"], [[0, 1, 2], [0, 1, 2]])


def test_short_or_missing_storage_record(tmp_path):
    data, _ = pickle_bytes({"w": np.zeros(4, np.float32)})
    path = tmp_path / "short.pth"
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("archive/data.pkl", data)
        handle.writestr("archive/data/0", b"\0" * 8)  # 2 floats, 4 announced
    with pytest.raises(TC.TorchCheckpointError, match=r"has 8 bytes; torch.FloatStorage with 4 elements needs 16"):
        TC.read_pth(path)
    with zipfile.ZipFile(tmp_path / "missing.pth", "w") as handle:
        handle.writestr("archive/data.pkl", data)
    with pytest.raises(TC.TorchCheckpointError, match="'archive/data/0' is missing"):
        TC.read_pth(tmp_path / "missing.pth")


def test_bad_persistent_id_is_refused(tmp_path):
    path = write_pth(tmp_path / "pid.pth", {"w": PersistentId(("module", "x"))})
    with pytest.raises(TC.TorchCheckpointError, match="unexpected persistent id"):
        TC.read_pth(path)


def test_not_a_zip_checkpoint(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.")  # torch < 1.6 starts with a magic number
    with pytest.raises(TC.TorchCheckpointError, match=r"legacy\.pth is not a zip-format torch checkpoint"):
        TC.read_pth(legacy)
    other = tmp_path / "other.pth"
    with zipfile.ZipFile(other, "w") as handle:
        handle.writestr("readme.txt", "hello")
    with pytest.raises(TC.TorchCheckpointError, match="expected one '<archive>/data.pkl'"):
        TC.read_pth(other)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        TC.read_pth(tmp_path / "nope.pth")
