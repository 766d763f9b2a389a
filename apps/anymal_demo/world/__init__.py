"""The demo's synthetic world: attribute vocabularies, media generators and the writer of its data files."""

from anymal_demo.world.vocabulary import MIXED, SPECS, Attribute, ModalitySpec, read_attributes
from anymal_demo.world.writer import WorldConfig, write_world

__all__ = ["MIXED", "SPECS", "Attribute", "ModalitySpec", "WorldConfig", "read_attributes", "write_world"]
