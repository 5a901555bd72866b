"""Which HTTP status (and gRPC status name) an error that reached the gateway gets.

Executors raise typed errors; their class name travels in the answer. Client
errors keep their message (it says what to do next); anything else is our
fault: a 500 with a generic message, the details only in the server log.
"""

from __future__ import annotations

# Exception class name -> HTTP status. Names, not classes: an executor's exception arrives as a name.
CLIENT_ERRORS: dict[str, int] = {
    "ValidationError": 422,  # a parameter model refused the request
    "ParameterError": 422,  # the same, as the executors report it
    "ConfigError": 400,
    "DataError": 400,
    "DeviceError": 400,
    "ModelNotAvailableError": 400,
    "ValueError": 400,
    "BadRequestError": 400,
    "NotFoundError": 404,
    "DatasetNotFoundError": 404,
    "ConflictError": 409,
    "PayloadTooLargeError": 413,
    "AuthError": 401,
    "ForbiddenError": 403,
    "NotFromGatewayError": 403,
}

GRPC_CODES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_ARGUMENT",
}

INTERNAL_MESSAGE = "internal error in the {where}; the server log has the details (request {request_id})"


def http_status(exception_name: str | None) -> int:
    """The HTTP status for an error of class ``exception_name`` (500 for anything not a client error)."""
    return CLIENT_ERRORS.get(exception_name or "", 500)


def is_client_error(exception_name: str | None) -> bool:
    return http_status(exception_name) < 500
