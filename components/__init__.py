"""Reusable ComponentResources, one concern each. What differs per cloud is a builder in `providers/<cloud>/`."""
