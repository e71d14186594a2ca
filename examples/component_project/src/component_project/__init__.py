"""Example dg project: RAGFlow ingestions declared in YAML."""
