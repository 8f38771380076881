"""keras_resnet.compat: TensorFlow's start-up notices dropped, real errors kept."""

import subprocess
import sys
import textwrap

from keras_resnet.compat import filter_startup_noise

# Captured from `import tensorflow` + `tf.config.list_physical_devices()` on a CPU-only machine (TF 2.21).
CPU_ONLY_STARTUP = textwrap.dedent("""\
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796001328.245787    5983 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
    I0000 00:00:1796001328.248596    5983 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:1796001328.407656    5983 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
    To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
    E0000 00:00:1796001332.431984    5983 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
    """)
CUINIT = "E0000 00:00:1.0    1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: CUDA_ERROR_NO_DEVICE\n"


def test_known_notices_are_dropped_and_everything_else_kept_in_order():
    real = "E0000 00:00:1.0    1 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\nTraceback: boom\n"
    assert filter_startup_noise(CPU_ONLY_STARTUP) == ""
    assert filter_startup_noise(CPU_ONLY_STARTUP.replace("\n", "\n" + real, 1)) == real
    # With a CUDA driver present (no "Could not find cuda drivers"), a failing cuInit is a real error.
    assert filter_startup_noise(CUINIT) == CUINIT


def run_python(code, **env):
    import os

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_quiet_import_leaves_stderr_clean():
    result = run_python("""
        import sys
        from keras_resnet.compat import import_tensorflow_quietly
        import_tensorflow_quietly()
        import tensorflow as tf
        print(float(tf.reduce_sum(tf.ones(3))), tf.config.list_logical_devices()[0].device_type)
        """, TF_CPP_MIN_LOG_LEVEL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3.0 ")
    for notice in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "Could not find cuda drivers", "cuInit: UNKNOWN"):
        assert notice not in result.stderr, result.stderr


def test_an_import_error_and_what_tensorflow_printed_before_it_stay_visible(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'E0000 00:00:1.0 1 loader.cc:1] libcudnn.so.9: cannot open shared object file\\n')\n"
        "raise ImportError('broken tensorflow install')\n")
    result = run_python("""
        import sys
        sys.path.insert(0, %r)
        from keras_resnet.compat import import_tensorflow_quietly
        import_tensorflow_quietly()
        """ % str(tmp_path))
    assert result.returncode != 0
    assert "libcudnn.so.9: cannot open shared object file" in result.stderr
    assert "broken tensorflow install" in result.stderr and "oneDNN" not in result.stderr


def test_weights_file_keys_are_the_groups_save_weights_writes(tmp_path):
    import h5py
    import keras

    from keras_resnet.compat import weights_file_keys

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="first")(inputs)
    x = keras.layers.Dense(3, name="second")(keras.layers.BatchNormalization(name="bn")(x))
    model = keras.Model(inputs, x)
    model.save_weights(tmp_path / "m.weights.h5")
    keys = weights_file_keys(model)
    assert keys == {"input_layer": "layers/input_layer", "first": "layers/dense", "bn": "layers/batch_normalization",
                    "second": "layers/dense_1"}
    with h5py.File(tmp_path / "m.weights.h5", "r") as handle:
        for name in ("first", "second", "bn"):
            stored = [handle[f"{keys[name]}/vars/{i}"][()] for i in range(len(handle[f"{keys[name]}/vars"]))]
            assert all((a == b).all() for a, b in zip(stored, model.get_layer(name).get_weights())), name
