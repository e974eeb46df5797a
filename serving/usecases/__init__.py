"""Use cases of the API over the parts they read (``serving.deps`` wires them from the app's
services): rule preview, reports, model administration, product search. The search pipeline
and the erasure of a user are in ``serving.services``."""
