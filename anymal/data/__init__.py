"""Training data: every supported dataset layout normalised into one typed :class:`Example` record.

See ``anymal.data.readers`` for the readers, ``anymal.data.formats`` for the accepted row layouts and
``anymal.data.mixing`` for weighted mixing.
"""

from anymal.data.formats import ConversationFormat, LlavaFormat, M3ITFormat, MediaOptions, PairFormat
from anymal.data.media_refs import decode_base64, looks_like_base64, media_ref
from anymal.data.mixing import Mixture
from anymal.data.readers import (
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

__all__ = [
    "ConversationFormat",
    "DataReport",
    "Example",
    "ExampleReader",
    "LlavaFormat",
    "M3ITFormat",
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
    "read_pairs",
]
