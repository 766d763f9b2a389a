"""Calls into transformers and PEFT whose names moved between the releases we support (see ``make test-latest``).

transformers 5.24 renamed gradient checkpointing to *activation* checkpointing and deprecated the old names. We call
the new name where it exists and the old one before it. PEFT 0.21 still calls the old names inside its own
functions; those FutureWarnings are about PEFT's code, not ours, so they are silenced only around those calls.
Everything else deprecated stays loud: the tests turn deprecation warnings into errors (``setup.cfg``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

# messages of deprecations that PEFT (not anymal) triggers inside transformers
_PEFT_INTERNAL = (
    r"`is_gradient_checkpointing` is deprecated",
    r"`gradient_checkpointing_enable` is deprecated",
)


def enable_activation_checkpointing(model: Any, use_reentrant: bool = False) -> None:
    """Turns on activation (gradient) checkpointing of an HF model, a PEFT wrapper of one included."""
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextlib.contextmanager
def peft_internal_deprecations_silenced() -> Iterator[None]:
    """Around a PEFT call: hides the transformers deprecations that PEFT's own code triggers, and only those."""
    with warnings.catch_warnings():
        for message in _PEFT_INTERNAL:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield
