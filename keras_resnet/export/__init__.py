"""Export trained runs (.keras, SavedModel, TFLite) behind a parity gate, and run them.

Example:
    >>> from keras_resnet.export import export_model, load_runner, predict_files
    >>> result = export_model("saved_models/run1", "tflite", "int8")
    >>> runner = load_runner(result.path)
    >>> predict_files(runner, ["photos/"], k=3)
"""

from keras_resnet.export.exporter import FORMATS, ExportResult, default_output, export_model
from keras_resnet.export.parity import THRESHOLDS, ExportParityError, ParityReport, compare
from keras_resnet.export.predict import Prediction, format_predictions, predict_files, predict_paths
from keras_resnet.export.runners import KerasRunner, Runner, SavedModelRunner, TFLiteRunner, load_runner
from keras_resnet.export.tflite import QUANTIZATIONS, convert_to_tflite

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "THRESHOLDS",
    "ExportParityError",
    "ExportResult",
    "KerasRunner",
    "ParityReport",
    "Prediction",
    "Runner",
    "SavedModelRunner",
    "TFLiteRunner",
    "compare",
    "convert_to_tflite",
    "default_output",
    "export_model",
    "format_predictions",
    "load_runner",
    "predict_files",
    "predict_paths",
]
