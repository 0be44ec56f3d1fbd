"""The service's Python code that runs in AWS Lambda (and, unchanged, in the local runtime).

Layers, by folder:
- ``domain``   plain Python: rules, states, catalogues. Knows nothing of AWS or HTTP.
- ``adapters`` AWS access (DynamoDB, S3, SageMaker) behind small interfaces.
- ``api``      the HTTP layer (Powertools REST resolver + routers).
- ``events``   the SageMaker state-change handler (EventBridge).
- ``reconciler`` the scheduled repair of jobs whose events were lost.
"""
