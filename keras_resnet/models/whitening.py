"""A stem convolution initialised from the PCA whitening of image patches.

The first convolution of a ResNet sees small patches of the (normalised) image, and
neighbouring pixels and colour channels are strongly correlated: most of a patch's
variance lies in a few smooth directions. Setting the stem's filters to the principal
directions of the training patches, each scaled by ``1 / sqrt(eigenvalue + eps)``,
makes the stem's outputs decorrelated with unit variance from the first step, so
early training does not spend its first epochs learning that. Fast CIFAR-10 training
recipes use it (e.g. Keller Jordan's airbench; the idea goes back to Coates & Ng's
single-layer networks). Each principal direction is used twice, as ``+v`` and ``-v``:
the ReLU after the stem would otherwise discard half of each component.

A stem of ``F`` filters over ``k x k x C`` patches keeps the top ``ceil(F / 2)``
directions, so ``ceil(F / 2)`` must not exceed ``k * k * C`` (ResNet-20: 16 filters,
8 of 27 directions; ImageNet ResNets: 64 filters, 32 of 147).

Backend-neutral (numpy + Keras). The trainer applies it with ``model.stem_init:
whitening`` (or ``whitening_frozen``, which keeps the filters fixed).

Example (1,024 CIFAR-10 training images: 8 directions hold 99.2% of the 3x3 patch variance):
    >>> model = build_resnet("resnet20", num_classes=10, include_preprocessing=True,
    ...                      preprocessing={"mode": "dataset", "mean": [125.1, 122.6, 113.3], "std": [62.1, 62.0, 66.4]})
    >>> summary = init_stem_whitening(model, train_images)   # uint8 NHWC, as the model takes them
    >>> summary["components"], round(summary["explained_variance"], 3)
    (8, 0.992)
"""

from __future__ import annotations

import math

import numpy as np

from keras_resnet.models.naming import STEM_CONV

#: Added to each eigenvalue before the inverse square root: bounds the gain of
#: low-variance (noisy, high-frequency) directions. Inputs are normalised to unit variance per channel.
DEFAULT_EPS = 1e-2
#: Patches drawn at random (all of them when there are fewer) for the covariance.
DEFAULT_MAX_PATCHES = 200_000


def image_patches(images, kernel_size, max_patches: int = DEFAULT_MAX_PATCHES, seed: int = 0) -> np.ndarray:
    """``kernel_size`` patches of NHWC images at every valid position, flattened in ``(kh, kw, c)`` order.

    Args:
        images: Array ``(N, H, W, C)``.
        kernel_size: ``(kh, kw)``.
        max_patches: At most this many patches, drawn uniformly without replacement.
        seed: Seed of that draw.

    Returns:
        float64 array ``(P, kh * kw * C)``.

    Raises:
        ValueError: images that are not NHWC or smaller than the kernel.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be an NHWC batch (4 dimensions). Received shape {images.shape}")
    kh, kw = (int(v) for v in kernel_size)
    n, h, w, c = images.shape
    if n == 0 or h < kh or w < kw:
        raise ValueError(f"need at least one image of at least {kh}x{kw} pixels for {kh}x{kw} patches. "
                         f"Received shape {images.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(images, (kh, kw), axis=(1, 2))  # (n, h', w', c, kh, kw): a view
    total = windows.shape[0] * windows.shape[1] * windows.shape[2]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(total, size=min(total, int(max_patches)), replace=False)
    index = np.unravel_index(chosen, windows.shape[:3])
    patches = windows[index]  # (P, c, kh, kw)
    return patches.transpose(0, 2, 3, 1).reshape(len(chosen), kh * kw * c).astype(np.float64)


def whitening_kernel(patches, kernel_shape, filters: int, eps: float = DEFAULT_EPS):
    """Convolution filters that whiten ``patches``: the top principal directions, as ``+v`` and ``-v``.

    Args:
        patches: ``(P, kh * kw * C)`` rows (see `image_patches`), at least 2.
        kernel_shape: ``(kh, kw, C)``.
        filters: Output channels ``F``; ``ceil(F / 2)`` directions are kept.
        eps: Added to each eigenvalue before scaling by its inverse square root.

    Returns:
        ``(kernel, eigenvalues)``: float32 kernel ``(kh, kw, C, F)`` in Keras' Conv2D
        layout (filter ``i`` and ``i + ceil(F / 2)`` are ``v_i`` and ``-v_i``), and all
        eigenvalues of the patch covariance, largest first.

    Raises:
        ValueError: too few patches, a mismatched shape, or more directions needed than
            the patches have dimensions.
    """
    patches = np.asarray(patches, dtype=np.float64)
    kh, kw, c = (int(v) for v in kernel_shape)
    dim = kh * kw * c
    if patches.ndim != 2 or patches.shape[1] != dim:
        raise ValueError(f"patches must be (P, {dim}) for a {kh}x{kw}x{c} kernel. Received shape {patches.shape}")
    if patches.shape[0] < 2:
        raise ValueError(f"need at least 2 patches for a covariance. Received {patches.shape[0]}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0. Received eps={eps}")
    components = math.ceil(filters / 2)
    if not 1 <= components <= dim:
        raise ValueError(f"a stem of {filters} filters keeps {components} principal directions, but {kh}x{kw}x{c} "
                         f"patches have only {dim}: whitening fills at most {2 * dim} filters")
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]
    top = eigenvectors[:, :components] / np.sqrt(eigenvalues[:components] + eps)  # (dim, components)
    both = np.concatenate([top, -top], axis=1)[:, :filters]
    return both.reshape(kh, kw, c, filters).astype(np.float32), eigenvalues


def init_stem_whitening(model, images, trainable: bool = True, eps: float = DEFAULT_EPS,
                        layer_name: str = STEM_CONV, max_patches: int = DEFAULT_MAX_PATCHES, seed: int = 0) -> dict:
    """Set the stem convolution's filters to the PCA whitening of ``images``' patches, in place.

    The patches are taken from what the stem sees: ``images`` go through the model's
    layers before it (its preprocessing layer, padding), so pass images as the model
    takes them (e.g. raw uint8 pixels for a model with preprocessing). The bias, if
    any, is left as is.

    Args:
        model: A kresnet ResNet (its stem convolution is ``conv1_conv``).
        images: NHWC training images; about a thousand are plenty.
        trainable: False freezes the stem convolution (re-apply after `freeze`,
            which resets ``trainable`` by stage).
        eps: See `whitening_kernel`.
        layer_name: The convolution to set.
        max_patches: Patches used for the covariance (a random subset).
        seed: Seed of the patch draw.

    Returns:
        ``{"layer", "components", "explained_variance", "images", "patches"}``:
        the share of the patch variance in the kept directions, and what it was
        computed from.

    Raises:
        ValueError: the model has no such layer, or see `whitening_kernel`.
    """
    import keras

    try:
        conv = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}: the whitening stem needs a kresnet "
                         "ResNet (its stem convolution)") from None
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty NHWC batch. Received shape {images.shape}")
    model_input = model.inputs[0]
    if conv.input is model_input:
        seen = images.astype(np.float32)
    else:
        seen = keras.Model(model_input, conv.input).predict(images, batch_size=256, verbose=0)
    seen = np.asarray(seen, dtype=np.float32)
    kh, kw = conv.kernel_size
    patches = image_patches(seen, (kh, kw), max_patches=max_patches, seed=seed)
    kernel, eigenvalues = whitening_kernel(patches, (kh, kw, seen.shape[-1]), conv.filters, eps=eps)
    conv.kernel.assign(kernel)
    conv.trainable = trainable
    components = math.ceil(conv.filters / 2)
    return {"layer": layer_name, "components": components,
            "explained_variance": float(eigenvalues[:components].sum() / max(eigenvalues.sum(), 1e-12)),
            "images": int(len(images)), "patches": int(len(patches))}
