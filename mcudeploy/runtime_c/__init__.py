"""mcudeploy subpackage."""
