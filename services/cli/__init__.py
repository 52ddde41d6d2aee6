"""``gpufleet``: the command line of the fleet, in the spirit of sbatch / squeue / scancel / sacct.

It talks only to the public REST API of the gateway (``/v1``) and its event stream, like any other
client: nothing here imports another service's code. User documentation: ``docs/cli.md``.
"""
