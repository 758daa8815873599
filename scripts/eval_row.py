"""Formats one table row of scripts/eval.sh from `storyline eval --json` output (Storyline, then baseline)."""
import json
import sys

name = sys.argv[1]
s, b = [json.loads(line) for line in sys.stdin]
print(
    f"| {name} | {s['precision']:.4f} | {s['recall']:.4f} | **{s['f1']:.4f}** | "
    f"{s['exact_story_share'] * 100:.1f}% | {b['precision']:.4f} | {b['recall']:.4f} | {b['f1']:.4f} |"
)
