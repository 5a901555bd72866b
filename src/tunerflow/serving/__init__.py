"""The contract at the Jina boundary: document schemas and request parameter models.

Shared by both executors and the client, so a document passing through a
linear Flow keeps every field. Imports docarray and pydantic, never jina.
"""
