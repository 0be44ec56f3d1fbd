"""CDK constructs, one per concern: state, storage, training, functions, API, events, monitoring."""
