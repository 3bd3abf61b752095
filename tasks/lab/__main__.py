from tasks.core.cli import run
from tasks.lab.cli import cli_main

run(cli_main)
