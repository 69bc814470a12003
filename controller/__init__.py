"""The operator side: read and render bundles, sign, publish, aggregate status."""
