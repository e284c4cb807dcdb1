"""`python -m launcher` is `mae-launch`."""
from launcher.cli import main

if __name__ == "__main__":
    main(prog_name="mae-launch")
