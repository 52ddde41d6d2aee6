"""The agent listens on nothing; its entrypoint is the command line (run, or ``--probe``)."""
