"""Use cases: the service's operations, composed from the domain and the adapters.

No HTTP and no Lambda here: the API handlers, the events handler and the reconciler call these.
"""
