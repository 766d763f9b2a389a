"""``llm.pad_to_multiple_of`` pads training batches to a few lengths (each new length stalls CUDA once) without
changing the loss: padded positions are masked and never targets."""

import dataclasses

import torch

from anymal.records import Turn
from anymal.testing import tiny_anymal


def test_padding_training_batches_to_a_multiple_leaves_the_loss_unchanged():
    model = tiny_anymal(("toy",)).eval()
    raw = model.plugins["toy"].example_inputs()
    prompt = model.prompt_encoder
    rows, labels = [], []
    for text, target in (("<toy> what is it?", " a signal ."), ("<toy> and this one, please?", " another one .")):
        ids, lab = prompt.encode_conversation([Turn("user", text), Turn("assistant", target)], {"toy": 1}, chat=False)
        rows.append(ids)
        labels.append(lab)
    batch = {"toy": model.preprocess("toy", raw[:2])}
    lengths = []
    model.llm.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    with torch.no_grad():
        plain = model(input_ids=rows, labels=labels, modality_inputs=batch)
        plain_aligned = model(input_ids=rows, labels=labels, modality_inputs=batch, return_labels=True)
        model.config.llm = dataclasses.replace(model.config.llm, pad_to_multiple_of=32)
        padded = model(input_ids=rows, labels=labels, modality_inputs=batch)
        padded_aligned = model(input_ids=rows, labels=labels, modality_inputs=batch, return_labels=True)
    assert lengths[0] == lengths[1] and lengths[0] % 32 != 0  # unpadded
    assert lengths[2] == lengths[3] == 32 * -(-lengths[0] // 32)  # padded up to the next multiple of 32
    assert torch.allclose(plain.loss, padded.loss, atol=1e-6)
    assert torch.equal(plain_aligned.labels, padded_aligned.labels)
    assert torch.allclose(plain_aligned.logits, padded_aligned.logits, atol=1e-5)
