"""Training data: every supported dataset layout normalised into one typed :class:`Example` record.

See ``anymal.data.readers`` for the readers, ``anymal.data.formats`` for the accepted row layouts and
``anymal.data.mixing`` for weighted mixing, ``anymal.data.m3it`` for M3IT task collections (data kind
``m3it_tasks``, registered in ``READERS`` here: the collection reader builds on ``anymal.data.readers``).
"""

from anymal.data.formats import ConversationFormat, LlavaFormat, M3ITFormat, MediaOptions, PairFormat
from anymal.data.m3it import M3ITInstance, read_m3it_tasks, write_m3it_task
from anymal.data.media_refs import decode_base64, looks_like_base64, media_ref
from anymal.data.mixing import Mixture
from anymal.data.readers import (
    READERS,
    ExampleReader,
    read_conversations,
    read_dataset,
    read_llava,
    read_m3it,
    read_pairs,
)
from anymal.data.report import DataReport, RowError
from anymal.data.rows import Row, iter_rows, load_local_dataset
from anymal.records import Example, MediaRef, Turn, placeholder

READERS["m3it_tasks"] = read_m3it_tasks

__all__ = [
    "ConversationFormat",
    "DataReport",
    "Example",
    "ExampleReader",
    "LlavaFormat",
    "M3ITFormat",
    "M3ITInstance",
    "MediaOptions",
    "MediaRef",
    "Mixture",
    "PairFormat",
    "Row",
    "RowError",
    "Turn",
    "decode_base64",
    "iter_rows",
    "load_local_dataset",
    "looks_like_base64",
    "media_ref",
    "placeholder",
    "read_conversations",
    "read_dataset",
    "read_llava",
    "read_m3it",
    "read_m3it_tasks",
    "read_pairs",
    "write_m3it_task",
]
