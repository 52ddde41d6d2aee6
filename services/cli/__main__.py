"""``python -m services.cli``: the same program as the installed ``gpufleet`` command.

Not a service: it builds no Runtime, it runs one command and exits with its code.
"""

from services.cli.app import run

if __name__ == "__main__":
    run()
