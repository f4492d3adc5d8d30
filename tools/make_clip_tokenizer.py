"""Write the CLIP tokenizer the Stable-Diffusion single-file configs use, offline.

    .venv/bin/python tools/make_clip_tokenizer.py BPE_FILE \
        plugins/diffusion/sd_backends/configs/clip-tokenizer

BPE_FILE is `bpe_simple_vocab_16e6.txt.gz`, OpenAI's CLIP byte-pair merges, as the
open-clip-torch package ships it (`pip download open-clip-torch==3.3.0 --no-deps`, then
unzip it from the wheel). The vocabulary is built from the merges exactly as CLIP's own
tokenizer builds it: 256 byte characters, the same with an end-of-word mark, one token
per merge, then <|startoftext|> and <|endoftext|> (49,408 in all). SD 1.x, SD 2.x and both
of SDXL's text encoders use this vocabulary.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

MERGES = 49152 - 256 - 2  # CLIP keeps this many merges


def main(argv: list[str]) -> int:
    from transformers import CLIPTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed
    from tests.support.random_sd import byte_characters

    source, out = Path(argv[0]), Path(argv[1])
    lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    chars = byte_characters()
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(
        vocab={t: i for i, t in enumerate(vocab)}, merges=merges, model_max_length=77
    )
    tokenizer.save_pretrained(out)
    print(
        f"wrote {out}: {len(vocab)} tokens; 'a photo of a cat' ->",
        tokenizer("a photo of a cat").input_ids,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
