"""Alembic migrations for the registry schema, shipped inside the package."""
