"""Pick the classifier a config names. Model modules are imported only when chosen (torch is
heavy, and onnxruntime is optional).

- ``"default"``: the bundled model (frozen all-MiniLM-L6-v2 + trained heads);
- anything else: a Hugging Face sequence-classification model id (from the local cache, never
  downloaded) or a local model directory, with its labels mapped through ``id2label``.
"""

from __future__ import annotations

from collections.abc import Mapping

from classifiers.base import Classifier
from listener.errors import ClassifierError

DEFAULT = "default"


def load_classifier(
    spec: str = DEFAULT,
    *,
    batch_size: int = 32,
    device: str = "auto",
    labels: Mapping[str, str] | None = None,
    urgency: str = "default",
) -> Classifier:
    """Load the model named by ``spec`` once; reuse the returned object for every batch."""
    if batch_size < 1:
        raise ClassifierError(f"batch size must be at least 1, got {batch_size}")
    if spec == DEFAULT:
        if labels:
            raise ClassifierError("classifier.labels applies to Hugging Face models only")
        from classifiers.artifacts import DEFAULT_HEADS_DIR
        from classifiers.transformer import TransformerClassifier

        return TransformerClassifier(DEFAULT_HEADS_DIR, batch_size=batch_size, device=device)
    from classifiers.hf import load_hf_classifier

    return load_hf_classifier(
        spec, batch_size=batch_size, device=device, labels=labels, urgency=urgency
    )
