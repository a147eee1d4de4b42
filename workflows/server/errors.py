"""Errors in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}`` with its status."""

from typing import Any


class ApiError(Exception):
    """An error a client caused or can act on; the app turns it into its JSON body and status."""

    def __init__(
        self, status: int, message: str, *, type: str, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


def bad_request(message: str, *, code: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, type="invalid_request_error", code=code, param=param)


def unknown_model(model: str, why: str) -> ApiError:
    return ApiError(
        404,
        f"The model {model!r} does not exist here: {why}. GET /v1/models lists what is served.",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )
