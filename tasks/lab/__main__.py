from tasks.core.cli import run
from tasks.lab.sweeps import cli_main

run(cli_main)
