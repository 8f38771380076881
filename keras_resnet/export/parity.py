"""The parity gate: an exported artifact must agree with the Keras model it came from.

Both run on the same held-out uint8 images; the report gives top-1 agreement, the
largest absolute probability difference and, when labels are known, each one's
accuracy. Thresholds per quantisation (float32 covers .keras, SavedModel and TFLite
without quantisation):

=========  ===========================================================
none       top-1 agreement >= 99.5 % and max |prob diff| <= 1e-4
float16    top-1 agreement >= 99 %
dynamic    top-1 agreement >= 99 %
int8       artifact accuracy >= Keras accuracy - 1 point (one-sided: doing
           better never fails). Without labels the Keras top-1 stands in
           for the labels, which makes it agreement >= 99 %.
=========  ===========================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Threshold:
    """What an artifact must reach; None means "not checked"."""

    min_agreement: float | None = None
    max_prob_diff: float | None = None
    max_accuracy_drop: float | None = None


THRESHOLDS = {
    "none": Threshold(min_agreement=0.995, max_prob_diff=1e-4),
    "float16": Threshold(min_agreement=0.99),
    "dynamic": Threshold(min_agreement=0.99),
    "int8": Threshold(max_accuracy_drop=0.01),
}


class ExportParityError(RuntimeError):
    """An exported artifact disagrees with its Keras model beyond the threshold.

    Attributes:
        report: The `ParityReport` (``report.failures`` says which check failed).
        rejected_path: Where the rejected artifact was set aside (or None).
    """

    def __init__(self, report: "ParityReport", rejected_path=None):
        self.report = report
        self.rejected_path = rejected_path
        where = f" The artifact was set aside as {rejected_path}." if rejected_path else ""
        super().__init__(
            f"Export failed the parity gate ({report.format}, quantize={report.quantize}, "
            f"{report.samples} images): {'; '.join(report.failures)}.{where}"
        )


@dataclass
class ParityReport:
    """Outcome of comparing an artifact with its Keras model.

    Attributes:
        format, quantize: What was exported.
        samples: Number of images compared.
        top1_agreement: Fraction of images with the same top-1 class.
        max_abs_prob_diff: Largest |p_keras - p_artifact| over all images and classes.
        keras_accuracy, artifact_accuracy: Top-1 accuracy against the labels (None
            when the images carry no labels).
        thresholds: The `Threshold` applied, as a dict.
        failures: Human-readable failed checks (empty when passed).
        passed: True when no check failed.
        artifact, images: Where the artifact and the images came from (strings).
        size_bytes: Artifact size on disk.
    """

    format: str
    quantize: str
    samples: int
    top1_agreement: float
    max_abs_prob_diff: float
    keras_accuracy: float | None
    artifact_accuracy: float | None
    thresholds: dict
    failures: list[str] = field(default_factory=list)
    passed: bool = True
    artifact: str = ""
    images: str = ""
    size_bytes: int | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable dict (written as ``parity.json``)."""
        return asdict(self)


def compare(
    keras_probs: np.ndarray,
    artifact_probs: np.ndarray,
    labels: list[int] | np.ndarray | None = None,
    fmt: str = "tflite",
    quantize: str = "none",
) -> ParityReport:
    """Compare two probability matrices and apply the quantisation's threshold.

    Args:
        keras_probs: float [N, C] from the Keras model.
        artifact_probs: float [N, C] from the exported artifact, same images.
        labels: True class indices [N], or None.
        fmt: Export format (recorded in the report).
        quantize: "none", "float16", "dynamic" or "int8" (picks the threshold).

    Returns:
        A `ParityReport`; ``passed`` is False and ``failures`` lists why when a
        threshold is missed.

    Raises:
        ValueError: on shape mismatch, no samples, or an unknown ``quantize``.

    Example:
        >>> report = compare(keras_probs, tflite_probs, labels, "tflite", "int8")
        >>> report.passed
    """
    if quantize not in THRESHOLDS:
        raise ValueError(f"quantize must be one of {tuple(THRESHOLDS)}. Received: quantize={quantize!r}")
    a = np.asarray(keras_probs, np.float64)
    b = np.asarray(artifact_probs, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(
            f"Expected two non-empty [N, C] probability arrays of the same shape. "
            f"Received: keras={a.shape}, artifact={b.shape}"
        )
    keras_top, artifact_top = a.argmax(1), b.argmax(1)
    agreement = float((keras_top == artifact_top).mean())
    max_diff = float(np.abs(a - b).max())
    keras_acc = artifact_acc = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (a.shape[0],):
            raise ValueError(f"Expected {a.shape[0]} labels. Received: labels shape {y.shape}")
        keras_acc = float((keras_top == y).mean())
        artifact_acc = float((artifact_top == y).mean())

    threshold = THRESHOLDS[quantize]
    failures = []
    if threshold.min_agreement is not None and agreement < threshold.min_agreement:
        failures.append(f"top-1 agreement {agreement:.2%} < {threshold.min_agreement:.1%}")
    if threshold.max_prob_diff is not None and max_diff > threshold.max_prob_diff:
        failures.append(f"max |prob diff| {max_diff:.3g} > {threshold.max_prob_diff:g}")
    if threshold.max_accuracy_drop is not None:
        reference = keras_acc if labels is not None else 1.0
        achieved = artifact_acc if labels is not None else agreement
        what = "accuracy" if labels is not None else "agreement with Keras top-1 (no labels)"
        if achieved < reference - threshold.max_accuracy_drop - 1e-12:
            failures.append(
                f"{what} {achieved:.2%} is more than {threshold.max_accuracy_drop:.0%} below Keras' {reference:.2%}"
            )
    return ParityReport(
        format=fmt,
        quantize=quantize,
        samples=int(a.shape[0]),
        top1_agreement=agreement,
        max_abs_prob_diff=max_diff,
        keras_accuracy=keras_acc,
        artifact_accuracy=artifact_acc,
        thresholds=asdict(threshold),
        failures=failures,
        passed=not failures,
    )
