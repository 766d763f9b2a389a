"""Chat templates (Jinja, as ``llm.chat_template``) that render each seed system's prompt format from anymal turns.

anymal turns carry modality placeholders (``<image>``) where the tokens go; these templates only place text around
them, so the core's splicing is unchanged:

* ``QWEN_VL_CHATML``: Qwen-VL-Chat's ChatML (``<|im_start|>role\\n...<|im_end|>``, default system prompt) with each
  image written ``Picture k: <img><image></img>`` and ``k`` counting images from 1 over the whole conversation.
* ``PINK_LLAMA2``: Pink's release, LLaMA-2 ``[INST]`` with the image in the system slot (``Image: <image>``, or
  ``Image: N/A`` without one).
* ``VICUNA_V1``: Vicuna v1.1 (u-LLaVA): ``SYSTEM USER: ... ASSISTANT: ...</s>``.
* ``YING_VLM``: Ying-VLM's ``<human>:\\n{instruction}\\n{input}\\n<bot>:\\n`` format.

Each renders a conversation prefix by prefix (the training encoder checks it), so the loss falls on answers only.
"""

from __future__ import annotations

QWEN_VL_CHATML = (
    "{%- set ns = namespace(k=0) -%}"
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- for part in message['content'].split('<image>') -%}"
    "{%- if not loop.first -%}"
    "{%- set ns.k = ns.k + 1 -%}"
    "{{ 'Picture ' + ns.k|string + ': <img><image></img>\\n' }}"
    "{{ part[1:] if part.startswith('\\n') else part }}"
    "{%- else -%}{{ part }}{%- endif -%}"
    "{%- endfor -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

PINK_LLAMA2 = (
    "{%- set ns = namespace(image='N/A') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' and '<image>' in message['content'] -%}{%- set ns.image = '<image>' -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- set text = message['content'].replace('<image>', '').strip() -%}"
    "{%- if loop.first -%}"
    "{{ bos_token + '[INST] <<SYS>>\\nImage: ' + ns.image + '\\n<</SYS>>\\n\\n' + text + ' [/INST]' }}"
    "{%- else -%}{{ bos_token + '[INST] ' + text + ' [/INST]' }}{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}{{ ' ' + message['content'].strip() + ' ' + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

VICUNA_V1 = (
    "{{ bos_token + 'A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user\\'s questions. ' }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ 'USER: ' + message['content'] + ' ' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

YING_VLM = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ '<human>:\\n' + message['content'] + '\\n<bot>:\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
