"""``weights="imagenet"`` for ResNet-18/34: torchvision's checkpoint downloaded, hash-checked,
converted without torch and cached, from a local HTTP server on 127.0.0.1.

The served files are written by the tests in torch.save's format (tests/helpers/torch_pth.py)
and named like torchvision's, ``<model>-<first 8 hex digits of their SHA-256>.pth``; the
table of names is patched to them and ``$KRESNET_TORCHVISION_URL`` points at the server.
torch is made unimportable, so the torch-free reader is used even where torch is installed.
"""

import functools
import hashlib
import socket
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from torch_pth import Call, Global, write_pth  # tests/helpers
from torchvision_state import set_by_hand, torchvision_state_dict  # tests/helpers

from keras_resnet import build_resnet
from keras_resnet.models import weight_cache
from keras_resnet.models import weights as W


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, hits, **kwargs):
        self.hits = hits
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 serving ``server.root``; ``server.hits`` lists GET paths."""
    root = tmp_path / "served"
    root.mkdir()
    hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, hits=hits, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    running = [True]

    def stop():
        if running.pop() if running else False:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)

    yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_port}/models/", hits=hits, stop=stop)
    stop()


@pytest.fixture
def cache(tmp_path, monkeypatch, server):
    """KERAS_HOME in tmp_path, torchvision's URL on the local server, torch unimportable."""
    (server.root / "models").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(W.TORCHVISION_URL_ENV, server.url)
    monkeypatch.setitem(sys.modules, "torch", None)
    return tmp_path / "keras" / "models"


def publish(server, monkeypatch, name, state, prefix=None):
    """Write ``state`` as a .pth named ``{name}-{sha256[:8]}.pth`` (or ``prefix``) on the server."""
    staging = server.root / "staging.pth"
    write_pth(staging, state)
    prefix = prefix or hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    file_name = f"{name}-{prefix}.pth"
    staging.rename(server.root / "models" / file_name)
    monkeypatch.setitem(weight_cache.TORCHVISION_FILES, name, file_name)
    return file_name


def test_download_convert_match_by_hand_then_offline_from_cache(server, cache, monkeypatch):
    state = torchvision_state_dict(seed=3)
    file_name = publish(server, monkeypatch, "resnet18", state)

    model = build_resnet("resnet18", input_shape=(64, 64, 3), classifier_activation=None, weights="imagenet")
    assert server.hits == [f"/models/{file_name}"]
    assert (cache / file_name).is_file() and W.converted_weights_path("resnet18").is_file()
    assert W.converted_weights_path("resnet18") == cache / "kresnet" / "resnet18_imagenet.weights.h5"

    by_hand = build_resnet("resnet18", input_shape=(64, 64, 3), classifier_activation=None)
    set_by_hand(by_hand, state)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), by_hand.predict(x, verbose=0), rtol=1e-4, atol=1e-4)

    # Second call: server gone, any download attempt fails the test. The converted file is used.
    server.stop()
    monkeypatch.setattr(weight_cache, "_download", lambda *a, **k: pytest.fail("second call must not download"))
    again = build_resnet("resnet18", num_classes=5, input_shape=(64, 64, 3), weights="imagenet")
    features = keras.Model(again.input, again.get_layer("avg_pool").output).predict(x, verbose=0)
    expected = keras.Model(by_hand.input, by_hand.get_layer("avg_pool").output).predict(x, verbose=0)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert server.hits == [f"/models/{file_name}"]


def test_hash_mismatch_is_deleted_and_refused(server, cache, monkeypatch):
    file_name = publish(server, monkeypatch, "resnet18", {"fc.bias": np.ones(3, np.float32)}, prefix="deadbeef")
    with pytest.raises(W.WeightsHashMismatch) as info:
        W.imagenet_weights_file(W.get_spec("resnet18"))
    message = str(info.value)
    assert "expected one starting with deadbeef" in message and "was deleted" in message
    assert f"{server.url}{file_name}" in message
    assert not (cache / file_name).exists()
    assert not W.converted_weights_path("resnet18").exists()
    assert isinstance(info.value, W.PretrainedWeightsUnavailable)  # callers catching that see it too


def test_corrupt_cached_checkpoint_is_replaced(server, cache, monkeypatch):
    file_name = publish(server, monkeypatch, "resnet34", {"fc.bias": np.ones(3, np.float32)})
    cache.mkdir(parents=True)
    (cache / file_name).write_bytes(b"truncated download")
    path = W.torchvision_checkpoint("resnet34")
    assert path == cache / file_name
    assert path.read_bytes() == (server.root / "models" / file_name).read_bytes()
    assert server.hits == [f"/models/{file_name}"]
    # Now cached and valid: no second request.
    W.torchvision_checkpoint("resnet34")
    assert server.hits == [f"/models/{file_name}"]


def test_hostile_checkpoint_with_valid_hash_is_refused_unrun(server, cache, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    state = {"conv1.weight": np.ones((2, 2), np.float32), "x": Call(Global("posix", "system"), (f"touch {marker}",))}
    file_name = publish(server, monkeypatch, "resnet18", state)
    with pytest.raises(W.UnsafeCheckpointError, match=r"names the global 'posix\.system'") as info:
        build_resnet("resnet18", weights="imagenet")
    assert file_name in str(info.value)
    assert not marker.exists()
    assert not W.converted_weights_path("resnet18").exists()


def test_offline_first_call_names_url_cache_path_and_convert_command(cache, monkeypatch):
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/models/"
    monkeypatch.setenv(W.TORCHVISION_URL_ENV, url)
    with pytest.raises(W.PretrainedWeightsUnavailable) as info:
        build_resnet("resnet18", num_classes=3, weights="imagenet")
    message = str(info.value)
    assert f"{url}resnet18-f37072fd.pth" in message
    assert str(cache / "resnet18-f37072fd.pth") in message
    converted = cache / "kresnet" / "resnet18_imagenet.weights.h5"
    assert f"kresnet convert-weights resnet18 CHECKPOINT -o {converted}" in message
    assert not (cache / "resnet18-f37072fd.pth").exists()
