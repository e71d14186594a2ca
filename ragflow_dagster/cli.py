"""Command-line entry point (placeholder)."""


def main() -> int:
    print("not yet")
    return 0
