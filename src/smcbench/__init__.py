"""smcbench: SMC-Bench ("Sparsity May Cry", ICLR 2023) as a reproducible Snakemake pipeline.

Importing the package is cheap (no torch): the Snakefile and the job client import it.
"""

__version__ = "0.1.0"
