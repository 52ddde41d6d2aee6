"""``make bench-vs-slurm``: this system on its embedded default against Slurm on the same machine."""
