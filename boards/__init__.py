"""Board files (one TOML per board). Shipped inside the package as mcudeploy.boards_data."""
