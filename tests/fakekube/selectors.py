"""Label and field selectors, parsed with the real grammar and semantics.

Label selectors: comma-separated requirements `k=v`, `k==v`, `k!=v`,
`k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>3`, `k<3`. `!=` and `notin`
match objects without the label, as on the real server. Structured
`LabelSelector` objects (matchLabels/matchExpressions) reduce to the same
requirements. Field selectors: `=`, `==`, `!=` on `metadata.name`,
`metadata.namespace`, and a few per-kind fields (`FIELDS`); anything else is
refused with 400 like the real server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.fakekube import errors

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")
_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "Job": ("status.successful",),
}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        try:
            have, want = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == ">" else have < want


def _fail(text: str, why: str) -> errors.ApiError:
    return errors.bad_request(f"unable to parse requirement: {why} in selector {text!r}")


def parse_labels(text: str) -> list[Requirement]:
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise _fail(text, "unexpected characters")
    out: list[Requirement] = []
    pos = 0

    def take() -> str:
        nonlocal pos
        token = tokens[pos] if pos < len(tokens) else ""
        pos += 1
        return token

    def peek() -> str:
        return tokens[pos] if pos < len(tokens) else ""

    while pos < len(tokens):
        token = take()
        if token == "!":
            out.append(Requirement(_key(take(), text), "!"))
        else:
            key = _key(token, text)
            op = peek()
            if op in ("", ","):
                out.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                take()
                value = "" if peek() in ("", ",") else take()
                out.append(Requirement(key, "!=" if op == "!=" else "=", (_value(value, text),)))
            elif op in ("in", "notin"):
                take()
                if take() != "(":
                    raise _fail(text, "found '', expected: '('")
                values: list[str] = []
                while peek() not in (")", ""):
                    item = take()
                    if item != ",":
                        values.append(_value(item, text))
                if take() != ")":
                    raise _fail(text, "found '', expected: ')'")
                out.append(Requirement(key, op, tuple(values)))
            elif op in (">", "<"):
                take()
                number = take()
                if not number.lstrip("-").isdigit():
                    raise _fail(text, f"for 'Gt', 'Lt' operators, the value must be an integer: {number!r}")
                out.append(Requirement(key, op, (number,)))
            else:
                raise _fail(text, f"found {op!r}, expected: in, notin, =, ==, !=, gt, lt")
        separator = take() if pos < len(tokens) else ""
        if separator not in ("", ","):
            raise _fail(text, f"found {separator!r}, expected: ','")
    return out


def _key(token: str, text: str) -> str:
    if not _KEY.match(token) or len(token.rsplit("/", 1)[-1]) > 63:
        raise _fail(text, f"invalid label key {token!r}")
    return token


def _value(token: str, text: str) -> str:
    if not _VALUE.match(token) or len(token) > 63:
        raise _fail(text, f"invalid label value: {token!r}")
    return token


def label_problem(key: str, value: Any) -> tuple[Any, str] | None:
    """(offending key or value, reason) when a label is invalid, as metadata validation reports it."""
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        why = (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character"
        )
        return key, why
    if not isinstance(value, str) or not _VALUE.match(value) or len(value) > 63:
        why = (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
        return value, why
    return None


def from_label_selector(selector: dict[str, Any]) -> list[Requirement]:
    """Requirements of a structured LabelSelector; raises ValueError when malformed."""
    out = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        op = ops.get(expression.get("operator", ""))
        if op is None or not expression.get("key"):
            raise ValueError(f"invalid label selector expression {expression!r}")
        out.append(Requirement(expression["key"], op, tuple(expression.get("values") or ())))
    return out


def matches(requirements: list[Requirement], labels: dict[str, str] | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        current: Any = obj
        for part in self.field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        have = "" if current is None else str(current)
        return (have == self.value) == self.equal


def parse_fields(text: str, kind: str) -> list[FieldRequirement]:
    allowed = ("metadata.name", "metadata.namespace", *FIELDS.get(kind, ()))
    out = []
    for term in filter(None, (part.strip() for part in text.split(","))):
        match = re.match(r"^([^!=]+)(!=|==|=)(.*)$", term)
        if not match:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match.groups()
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        out.append(FieldRequirement(field, op != "!=", value))
    return out
