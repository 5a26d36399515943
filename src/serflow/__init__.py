"""serflow: speech-emotion recognition from handcrafted features, as a Snakemake workflow."""

__version__ = "0.1.0"
