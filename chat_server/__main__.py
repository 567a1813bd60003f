"""`chat-server` command line (placeholder until the server lands)."""

import sys


def main() -> int:
    """Run the server."""
    print("chat-server: the server is still to come (issue 3).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
