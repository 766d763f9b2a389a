"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) through pycocoevalcap, the COCO caption evaluation code.

Tokenisation is explicit because it changes the numbers: ``"ptb"`` is COCO's own (Stanford PTBTokenizer, lower-cased,
punctuation tokens dropped; needs Java), ``"whitespace"`` lower-cases and splits on whitespace (what nlg-eval feeds
the scorers; its test vectors in ``../shared/assets/eval/expected_scores.json`` check this module). ``"auto"`` is
``"ptb"`` when ``java`` is on the PATH, else ``"whitespace"``; the result says which was used.

METEOR is the METEOR 1.5 jar pycocoevalcap ships, run with Java. Without Java it is not computed: the result lists
it under ``unavailable`` with the reason, never a made-up value. CIDEr's document frequencies come from the
evaluated set itself (as in COCO), so it is 0 for a single item.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Sequence
from typing import Any

from anymal.errors import ConfigError, InputError

CAPTION_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
TOKENIZERS = ("auto", "ptb", "whitespace")


def java_available() -> bool:
    """Whether a ``java`` executable is on the PATH (METEOR and the PTB tokenizer need it)."""
    return shutil.which("java") is not None


def _whitespace(texts: dict[int, list[str]]) -> dict[int, list[str]]:
    return {k: [" ".join(t.lower().split()) for t in v] for k, v in texts.items()}


def _ptb(texts: dict[int, list[str]]) -> dict[int, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": t} for t in v] for k, v in texts.items()})


_METEOR: Any = None  # one METEOR process per Python process: starting the jar (paraphrase tables) takes seconds


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[float | None, str | None]:
    global _METEOR
    if not java_available():
        return None, "METEOR needs Java (the METEOR 1.5 jar pycocoevalcap ships): install a JRE to get it"
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            _METEOR = Meteor()
        score, _ = _METEOR.compute_score(gts, res)
    except (OSError, ValueError) as exc:
        _METEOR = None
        return None, f"METEOR failed to run ({type(exc).__name__}: {exc})"
    return float(score), None


def caption_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    tokenizer: str = "auto",
    metrics: Sequence[str] = CAPTION_METRICS,
) -> dict[str, Any]:
    """Corpus-level caption metrics of ``predictions[i]`` against its references ``references[i]``.

    Returns ``{"Bleu_1": ..., ..., "CIDEr": ..., "tokenizer": "ptb"|"whitespace", "unavailable": {name: why}}``;
    metrics in ``[0, 1]`` except CIDEr-D (COCO's scale, x10).
    """
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"tokenizer={tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
    unknown = sorted(set(metrics) - set(CAPTION_METRICS))
    if unknown:
        raise ConfigError(f"unknown caption metrics {unknown}; expected some of {', '.join(CAPTION_METRICS)}")
    if len(predictions) != len(references):
        raise InputError(f"caption_scores: {len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        raise InputError("caption_scores: nothing to score")
    for i, refs in enumerate(references):
        if not refs:
            raise InputError(f"caption_scores: item {i} has no reference caption")
    used = ("ptb" if java_available() else "whitespace") if tokenizer == "auto" else tokenizer
    if used == "ptb" and not java_available():
        raise ConfigError("tokenizer='ptb' needs Java (the Stanford PTBTokenizer jar); use 'whitespace' or install one")
    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    notes: list[str] = []
    if used == "ptb":
        try:
            gts, res = _ptb(gts), _ptb(res)
        except OSError as exc:  # the wrapper writes a temporary file beside its jar: a read-only install fails
            if tokenizer == "ptb":
                raise ConfigError(f"the PTB tokenizer (Java) failed to run: {exc}") from exc
            used = "whitespace"
            notes.append(f"PTB tokenizer failed ({exc}); whitespace tokenisation used")
    if used == "whitespace":
        gts, res = _whitespace(gts), _whitespace(res)
    # an empty hypothesis makes pycocoevalcap's BLEU divide by zero: score it as one unmatched token
    res = {k: [v[0] if v[0].strip() else "<empty>"] for k, v in res.items()}

    out: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints BLEU's counts
        if any(m.startswith("Bleu") for m in metrics):
            from pycocoevalcap.bleu.bleu import Bleu

            bleu, _ = Bleu(4).compute_score(gts, res)
            for n, value in enumerate(bleu, 1):
                if f"Bleu_{n}" in metrics:
                    out[f"Bleu_{n}"] = float(value)
        if "METEOR" in metrics:
            value, why = _meteor(gts, res)
            if value is None:
                unavailable["METEOR"] = str(why)
            else:
                out["METEOR"] = value
        if "ROUGE_L" in metrics:
            from pycocoevalcap.rouge.rouge import Rouge

            out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        if "CIDEr" in metrics:
            from pycocoevalcap.cider.cider import Cider

            out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    out["tokenizer"] = used
    out["unavailable"] = unavailable
    if notes:
        out["notes"] = notes
    return out
