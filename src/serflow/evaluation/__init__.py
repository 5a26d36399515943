"""Stage 3, evaluation: the protocols (speaker-independent folds, hold-outs) and the scores with intervals."""
