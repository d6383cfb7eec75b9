"""The shapes world: a procedural text-to-video data set with ground truth.

Clips show one anti-aliased object (circle, square or triangle; one of seven colors; small or
large) moving left, right, up or down, slowly or fast, over a plain background. Every clip is
deterministic from (seed, index). Like real pretraining data, a fraction of clips carry defects
(blur, noise, jitter, flicker, a wrong caption) and captions come in a short user style and a
detailed style with quality words. An analytic detector reads attributes and defect levels back
from pixels, so generated videos can be scored against what their prompts asked for.

Modules: `vocabulary` (attributes and palettes), `sdf` (shape geometry), `render` (config and
rendering), `defects`, `lexicon`, `captions`, `parser`, `dataset`, `segmentation` and
`shape_fit` (the detector's stages), `detector`, `detector_quality`, `preview`.
"""

from vpt.world.captions import Caption, CaptionRegister, detailed_caption, short_caption
from vpt.world.dataset import Clip, ClipBatch, ShapesWorld, render_clean, sample_clip
from vpt.world.defects import DefectConfig, DefectKind, Defects
from vpt.world.detector import Detection, detect, detect_batch
from vpt.world.parser import ParsedPrompt, parse_prompt
from vpt.world.preview import save_preview_grid
from vpt.world.render import RenderedClip, WorldConfig, render_clip
from vpt.world.vocabulary import (
    BACKGROUND_RGB,
    OBJECT_RGB,
    AttributeName,
    Attributes,
    Background,
    Color,
    Direction,
    PromptAttributes,
    Shape,
    Size,
    Speed,
    all_attribute_combinations,
)

__all__ = [
    "BACKGROUND_RGB",
    "OBJECT_RGB",
    "AttributeName",
    "Attributes",
    "Background",
    "Caption",
    "CaptionRegister",
    "Clip",
    "ClipBatch",
    "Color",
    "DefectConfig",
    "DefectKind",
    "Defects",
    "Detection",
    "Direction",
    "ParsedPrompt",
    "PromptAttributes",
    "RenderedClip",
    "Shape",
    "ShapesWorld",
    "Size",
    "Speed",
    "WorldConfig",
    "all_attribute_combinations",
    "detailed_caption",
    "detect",
    "detect_batch",
    "parse_prompt",
    "render_clean",
    "render_clip",
    "sample_clip",
    "save_preview_grid",
    "short_caption",
]
