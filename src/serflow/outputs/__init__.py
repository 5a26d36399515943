"""Stage 5, outputs: run scores and model cards, the reader of results/, report, submissions, summary."""
