"""The `searchlearn` command line (entry point: `searchlearn.cli.main:main`)."""
