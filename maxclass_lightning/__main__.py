"""``python -m maxclass_lightning``. ``gallery`` needs neither torch nor Lightning, whose imports take
seconds: it starts without them. Every other subcommand goes through ``cli.main``."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["gallery"]:
        from maxclass_lightning.gallery import command

        command(sys.argv[2:])
    else:
        from maxclass_lightning.cli import main

        main()
