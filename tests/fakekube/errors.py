"""Failures as the real API server reports them: a `Status` body and its HTTP code.

Every refusal in the fake is an `ApiError`; the HTTP layer turns it into the
JSON `Status` object the official client parses, so `ApiException.status`,
`.reason` (the HTTP reason phrase) and the body's `reason`/`details` match what
a real cluster would send. Message formats copy the real server's
(`deployments.apps "web" not found`), because callers log and sometimes match them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One `details.causes` entry; `reason` is the Go `CauseType` (JSON key "reason")."""

    reason: str
    message: str
    field: str = ""

    def as_json(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        if not self.details:
            del body["details"]
        return body


def _details(name: str, group: str, kind: str, causes: list[Cause] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name} if name else {}
    if group:
        out["group"] = group
    out["kind"] = kind
    if causes:
        out["causes"] = [cause.as_json() for cause in causes]
    return out


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(*, plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', _details(name, group, plural)
    )


def no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(*, plural: str, group: str, name: str, deleting: bool = False) -> ApiError:
    prefix = "object is being deleted: " if deleting else ""
    message = f'{prefix}{_qualified(plural, group)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(name, group, plural))


def stale(*, plural: str, group: str, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(name, group, plural))


def precondition_failed(*, plural: str, group: str, name: str, what: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {what}'
    return ApiError(409, "Conflict", message, _details(name, group, plural))


def apply_conflicts(conflicts: list[tuple[str, str]]) -> ApiError:
    """`conflicts` holds (manager label, field path) pairs; the message groups them like the real one."""
    causes = [Cause("FieldManagerConflict", f"conflict with {who}", path) for who, path in conflicts]
    if len(conflicts) == 1:
        who, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path}"
    else:
        lines = []
        for who in sorted({who for who, _ in conflicts}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path}" for other, path in conflicts if other == who]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": [cause.as_json() for cause in causes]})


def invalid(*, kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', _details(name, group, kind, causes)
    )


def unprocessable(message: str) -> ApiError:
    """A patch that decodes but cannot be applied (the real server answers 422 here too)."""
    return ApiError(422, "Invalid", message, {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, {})


def forbidden(
    message: str, *, plural: str, group: str, name: str, causes: list[Cause] | None = None
) -> ApiError:
    return ApiError(403, "Forbidden", message, _details(name, group, plural, causes))


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(accepted: list[str]) -> ApiError:
    message = "the body of the request was in an unknown format - accepted media types include: " + ", ".join(
        accepted
    )
    return ApiError(415, "UnsupportedMediaType", message, {})


def injected(code: int, message: str) -> ApiError:
    reasons = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
    return ApiError(code, reasons.get(code, "InternalError"), message, {"causes": [{"message": message}]})
