"""The domain: plain Python, unit-testable without any AWS emulator.

Everything that is a *fact* of the product (statuses, model families, instance types,
Kohya parameters and their defaults, the S3 layout, the container contract) is defined
once in this package and imported by the API, the container, the CDK stack and the docs.
"""
