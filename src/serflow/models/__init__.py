"""Stage 4, models: model kinds, normalisation, cross-validated training and the final refit."""
