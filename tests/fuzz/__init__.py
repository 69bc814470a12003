"""atheris fuzz targets, run for seconds by `make test` and for FUZZ_SECONDS by `make fuzz`."""
