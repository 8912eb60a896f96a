"""``python -m difusion`` and the ``difusion`` command: the CLI, with a Ctrl-C during its start-up
(importing torch takes a second or two) reported in one line instead of a traceback."""

import sys


def main() -> None:
    try:
        from difusion.cli import main as cli_main
    except KeyboardInterrupt:
        print("difusion: interrupted", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
