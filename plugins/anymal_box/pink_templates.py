"""Instruction template pools of Pink's referential-comprehension tasks (one pool per task sub-type).

Pink samples one template per generated example (paper §3.2). Its released pools are large (11 to 22 templates
per relation/location/counting/detection sub-type, 52 for grounding, 107 for region captioning) and live in its
code; these pools are our own wording around the seed paper's templates (the first entry of a pool, where the
paper gives one). Pass your own pools to ``PinkTaskGenerator(templates=...)`` to use others.

Placeholders: ``<subject>``/``<object>`` (a box, or a ``<des>``-wrapped phrase), ``<relation>`` (a predicate),
``<position>`` (top left | top right | bottom left | bottom right), ``<category>`` (a class name), ``<expr>`` (a
referring phrase).
"""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, ...]] = {
    # 1. visual relation reasoning
    "relation_predict": (
        "Assist me in finding the relation between <subject> and <object> in the photo.",
        "What is the relationship between <subject> and <object>?",
        "How is <subject> related to <object> in this image?",
    ),
    "relation_locate": (
        "Please locate all objects that have relation <relation> with <subject>.",
        "Find every object that <subject> is <relation>, and give their coordinates.",
        "Which objects does <subject> have the relation <relation> with? Answer with their boxes.",
    ),
    "relation_classify": (
        "Please identify the class of all objects that have relation <relation> with <subject>.",
        "What kinds of objects is <subject> <relation>?",
        "Name the categories of the objects that <subject> is <relation>.",
    ),
    "relation_locate_classify": (
        "Please identify the location and class of all objects that have relation <relation> with <subject>.",
        "Locate and name every object that <subject> is <relation>.",
        "Give the boxes and categories of all objects in relation <relation> with <subject>.",
    ),
    # 2. coarse visual spatial reasoning
    "coarse_location_box_category": (
        "Identify the objects located at <position> of <object>.",
        "Which objects are at the <position> of <object>? Give their boxes and classes.",
        "List the location and category of every object to the <position> of <object>.",
    ),
    "coarse_location_category": (
        "What objects are located at <position> of <object>? Answer with their classes.",
        "Name the categories of the objects to the <position> of <object>.",
    ),
    "coarse_location_box": (
        "Locate the objects at <position> of <object>.",
        "Give the coordinates of every object to the <position> of <object>.",
    ),
    # 3. object counting
    "counting_by_name": (
        "How many <category> are there in the image?",
        "Count the <category> in this picture.",
        "What is the number of <category> in the photo?",
    ),
    "counting_by_exemplar": (
        "How many objects in the image are of the same category as <object>?",
        "Count the objects that belong to the same class as <object>.",
    ),
    # 4. object detection
    "detection_by_name": (
        "Identify all <category> in the image and show their coordinates.",
        "Detect every <category> in this picture.",
        "Where are the <category> in the image? Give all their boxes.",
    ),
    "detection_by_exemplar": (
        "Identify all objects of the same category as <object> and show their coordinates.",
        "Find every object of the same class as <object>.",
    ),
    # 5. visual grounding
    "grounding": (
        "Where is <expr>?",
        "Give the coordinates of <expr>.",
        "Locate <expr> in the image.",
    ),
    # 6. region (grounding) captioning
    "region_caption": (
        "Provide a unique description of the area <object>.",
        "Describe the region <object> so that it can be told apart from the rest of the image.",
        "What is in <object>? Give a short referring description.",
    ),
}
