"""Write the fixed evaluation prompt set (versioned; regenerate only with a new version).

    .venv/bin/python -m shapes_lab.make_eval_prompts \\
        --out plugins/shapes-lab/shapes_lab/eval-prompts-v1.tsv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shapes_lab.evaluate import make_prompt_set

VERSION = 1
SEED = 20261125
PER_KIND = 100
HELD_OUT_PER_KIND = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    prompts = make_prompt_set(SEED, PER_KIND, HELD_OUT_PER_KIND)
    header = [
        f"# Shapes evaluation prompts, version {VERSION}: kind<TAB>split<TAB>prompt",
        f"# {PER_KIND} per kind from seen colour-shape pairs, then {HELD_OUT_PER_KIND} per kind",
        "# built only from the held-out pairs. Made by:",
        f"#   .venv/bin/python -m shapes_lab.make_eval_prompts --out {args.out}",
    ]
    lines = [f"{p.kind}\t{p.split}\t{p.prompt}" for p in prompts]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} prompts to {args.out}")


if __name__ == "__main__":
    main()
