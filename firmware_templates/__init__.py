"""Jinja firmware templates. Shipped inside the package as mcudeploy.templates."""
