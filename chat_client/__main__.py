"""`chat-client` command line (placeholder until the client lands)."""

import sys


def main() -> int:
    """Run the client."""
    print("chat-client: the client is still to come (issue 4).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
