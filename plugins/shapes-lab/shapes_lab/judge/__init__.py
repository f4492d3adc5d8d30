"""The Shapes judge: reads a generated image back into objects and checks it against
its prompt, GenEval-style. Numpy and scipy only at check time (no torch)."""

from shapes_lab.judge.accuracy import ground_truth_accuracy, score_kinds, wrong_spec
from shapes_lab.judge.detections import Detection, Detections, Verdict
from shapes_lab.judge.judge import Judge

__all__ = [
    "Detection",
    "Detections",
    "Judge",
    "Verdict",
    "ground_truth_accuracy",
    "score_kinds",
    "wrong_spec",
]
