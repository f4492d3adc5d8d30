"""Reading the generation settings other tools write into images (and Studio's own).

One entry, `read(image) -> ParsedMetadata`; behind it, each format's reader in a module
of its own and the order they are tried in (`reading`). This is metadata code that knows
other tools' node and field names (ComfyUI's `unet_name`, InvokeAI's `model_weights`), so
it sits above the core, which must not import it: the core reads Studio's own format.
"""

from studio.core.metadata import MetadataError, ParsedMetadata
from studio.interop.reading import read

__all__ = ["MetadataError", "ParsedMetadata", "read"]
