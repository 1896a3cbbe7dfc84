"""Evaluation CLIs: `python -m eval.zero_shot` (the paper's Table 1) and `python -m eval.supervised`
(in-domain test splits, Table 4). Both score exactly as gliner 0.2.29's evaluator does
(eval/ner_eval.py).
"""
