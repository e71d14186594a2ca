"""pytest plugin placeholder (filled in by the sandbox work)."""
