from tasks.core.cli import run
from tasks.gan.cli import cli_main

run(cli_main)
