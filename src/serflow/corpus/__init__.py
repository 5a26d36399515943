"""Stage 1, the corpus: listing a corpus (adapters), the probed manifest, audio decoding, pseudo-speakers."""
