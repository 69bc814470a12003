"""Join tokens (controller.tokens) and the registration policy (controller.registering.decide)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller import errors, tokens
from controller.identities import JoinRequest, Registered, RequestStatus
from controller.registering import Decision, decide
from wire import joining, keys
from wire.registration import Outcome, Request

NOW = 1_700_000_000.0
SECRET = "k" * 43
DEVICE_KEY = b"\x01" * 32
OTHER_KEY = b"\x02" * 32
GROUP = "stores"


def _token(**changes: Any) -> tokens.Token:
    values: dict[str, Any] = {
        "id": "a1b2c3d4e5f60718",
        "secret_hash": tokens.hash_secret(SECRET),
        "group": GROUP,
        "expires_at": NOW + 3600,
        "created_at": NOW - 3600,
    }
    values.update(changes)
    return tokens.Token(**values)


def _request(*, secret: str = SECRET, key: bytes = DEVICE_KEY) -> Request:
    return Request(token_id="a1b2c3d4e5f60718", secret=secret, name="pi-7", public_key=key)


def _registered(*, key: bytes | None = DEVICE_KEY, revoked: bool = False, group: str = GROUP) -> Registered:
    return Registered(name="pi-7", group=group, public_key=key, revoked=revoked)


def _held(status: RequestStatus, *, key: bytes = DEVICE_KEY) -> JoinRequest:
    return JoinRequest(
        name="pi-7",
        client_id="join-0123456789abcdef",
        token_id="a1b2c3d4e5f60718",
        group=GROUP,
        public_key=key,
        status=status,
        received_at=NOW - 60,
    )


def _decide(
    request: Request | None = None,
    *,
    token: tokens.Token | None = None,
    registered: Registered | None = None,
    held: JoinRequest | None = None,
) -> Decision:
    return decide(request or _request(), token=token, registered=registered, held=held, now=NOW)


USED_UP = {"max_uses": 1, "uses": 1}
EXPIRED = {"expires_at": NOW}
REVOKED = {"revoked_at": NOW - 1}


# -- parse_duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("168h", 168 * 3600),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("1w2d", 9 * 86400),
        ("30m", 1800),
        ("45s", 45),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("0.5d", 43200),
    ],
)
def test_parse_duration_reads_numbers_with_units(text: str, seconds: float) -> None:
    assert tokens.parse_duration(text) == seconds


def test_seven_days_is_the_default_ttl() -> None:
    assert tokens.parse_duration("7d") == tokens.DEFAULT_TTL == tokens.parse_duration("168h")


@pytest.mark.parametrize(
    "text", ["", "10", "h", "-1h", "5x", "1h junk", "junk 1h", " 1h", "1h ", "0h", "0s0m", "1.h", ".5h", "1H"]
)
def test_parse_duration_refuses_anything_but_positive_numbers_with_units(text: str) -> None:
    with pytest.raises(errors.ControllerError, match="duration"):
        tokens.parse_duration(text)


# -- secrets -------------------------------------------------------------------------------------


def test_secret_is_stored_only_as_its_hash() -> None:
    secret = tokens.new_secret()
    stored = tokens.hash_secret(secret)
    assert secret not in stored
    assert tokens.secret_matches(secret, stored)
    assert not tokens.secret_matches(secret + "x", stored)


def test_new_ids_and_secrets_are_unique_and_fit_a_join_string() -> None:
    fingerprint = keys.SigningKey.generate().verify_key.fingerprint
    ids = {tokens.new_id() for _ in range(50)}
    secrets_ = {tokens.new_secret() for _ in range(50)}
    assert len(ids) == 50
    assert len(secrets_) == 50
    for token_id, secret in zip(ids, secrets_, strict=True):
        join = joining.JoinString("mqtt://broker", token_id, secret, fingerprint)  # validates both
        assert joining.JoinString.parse(join.encode()) == join


def test_bootstrap_username_names_the_token() -> None:
    assert _token().username == "join-a1b2c3d4e5f60718"


# -- refusal -------------------------------------------------------------------------------------


def test_refusal_of_no_token_says_it_is_not_valid() -> None:
    assert "not valid" in (tokens.refusal(None, SECRET, NOW) or "")


def test_refusal_of_a_wrong_secret_says_it_is_not_valid() -> None:
    assert "not valid" in (tokens.refusal(_token(), SECRET + "x", NOW) or "")


def test_refusal_of_a_wrong_secret_does_not_reveal_the_token_state() -> None:
    assert tokens.refusal(_token(**REVOKED), "wrong", NOW) == tokens.refusal(None, "wrong", NOW)


def test_refusal_of_a_revoked_token_says_revoked() -> None:
    assert tokens.refusal(_token(**REVOKED), SECRET, NOW) == "join token a1b2c3d4e5f60718 was revoked"


def test_refusal_counts_the_expiry_instant_as_expired() -> None:
    assert tokens.refusal(_token(expires_at=NOW), SECRET, NOW) == "join token a1b2c3d4e5f60718 has expired"
    assert tokens.refusal(_token(expires_at=NOW + 0.001), SECRET, NOW) is None


def test_refusal_of_a_used_up_token_says_how_many_uses() -> None:
    reason = tokens.refusal(_token(max_uses=3, uses=3), SECRET, NOW)
    assert reason == "join token a1b2c3d4e5f60718 is used up (3 of 3 uses)"


def test_refusal_of_a_token_with_uses_left_is_none() -> None:
    assert tokens.refusal(_token(max_uses=3, uses=2), SECRET, NOW) is None


def test_refusal_of_a_valid_unlimited_token_is_none() -> None:
    assert tokens.refusal(_token(uses=10_000), SECRET, NOW) is None


def test_refusal_names_revocation_before_expiry() -> None:
    reason = tokens.refusal(_token(**REVOKED, **EXPIRED, **USED_UP), SECRET, NOW)
    assert reason is not None and "revoked" in reason


# -- decide: the token ---------------------------------------------------------------------------


def test_decide_refuses_a_forged_secret_without_consuming() -> None:
    decision = _decide(_request(secret="forged" * 8), token=_token())
    assert decision.outcome is Outcome.REFUSED
    assert "not valid" in decision.message
    assert not decision.consume


def test_decide_refuses_an_unknown_token_without_consuming() -> None:
    decision = _decide(token=None)
    assert decision.outcome is Outcome.REFUSED
    assert "not valid" in decision.message
    assert not decision.consume


def test_decide_forged_secret_is_refused_even_for_the_registered_device_key() -> None:
    decision = _decide(_request(secret="forged" * 8), token=_token(), registered=_registered())
    assert decision.outcome is Outcome.REFUSED
    assert "not valid" in decision.message


def test_decide_approves_with_an_auto_token_and_consumes_a_use() -> None:
    decision = _decide(token=_token(approval=tokens.Approval.AUTO))
    assert decision == Decision(Outcome.APPROVED, "cluster 'pi-7' registered", consume=True)


def test_decide_holds_with_a_manual_token_and_consumes_a_use() -> None:
    decision = _decide(token=_token(approval=tokens.Approval.MANUAL))
    assert decision.outcome is Outcome.PENDING
    assert "edgefleet clusters approve pi-7" in decision.message
    assert decision.consume


def test_decide_approves_the_last_use_of_a_limited_token() -> None:
    decision = _decide(token=_token(max_uses=2, uses=1))
    assert decision.outcome is Outcome.APPROVED
    assert decision.consume


@pytest.mark.parametrize(
    ("state", "reason"),
    [(EXPIRED, "has expired"), (REVOKED, "was revoked"), (USED_UP, "is used up (1 of 1 uses)")],
)
@pytest.mark.parametrize("approval", list(tokens.Approval))
def test_decide_refuses_a_new_device_on_an_unusable_token_with_the_reason(
    state: dict[str, Any], reason: str, approval: tokens.Approval
) -> None:
    decision = _decide(token=_token(approval=approval, **state))
    assert decision.outcome is Outcome.REFUSED
    assert decision.message == f"join token a1b2c3d4e5f60718 {reason}"
    assert not decision.consume


# -- decide: names already registered ------------------------------------------------------------


def test_decide_refuses_a_name_registered_by_another_key() -> None:
    decision = _decide(token=_token(), registered=_registered(key=OTHER_KEY))
    assert decision.outcome is Outcome.REFUSED
    assert "taken" in decision.message
    assert not decision.consume


def test_decide_refuses_a_name_added_by_hand_without_a_device_key() -> None:
    decision = _decide(token=_token(), registered=_registered(key=None))
    assert decision.outcome is Outcome.REFUSED
    assert "taken" in decision.message


@pytest.mark.parametrize(("state", "reason"), [(EXPIRED, "has expired"), (REVOKED, "was revoked")])
@pytest.mark.parametrize("held", [None, RequestStatus.PENDING, RequestStatus.APPROVED])
def test_decide_refuses_asking_again_on_a_revoked_or_expired_token(
    state: dict[str, Any], reason: str, held: RequestStatus | None
) -> None:
    registered = _registered() if held is None else None
    decision = _decide(
        token=_token(**state), registered=registered, held=_held(held) if held is not None else None
    )
    assert decision.outcome is Outcome.REFUSED
    assert reason in decision.message


@pytest.mark.parametrize("status", [RequestStatus.PENDING, RequestStatus.APPROVED])
def test_decide_refuses_moving_a_held_request_to_another_token(status: RequestStatus) -> None:
    other = _token(group="secret", id="ffffffffffffffff")
    request = dataclasses.replace(_request(), token_id=other.id)
    decision = _decide(request, token=other, held=_held(status))
    assert decision.outcome is Outcome.REFUSED
    assert "another token" in decision.message
    assert not decision.consume


@pytest.mark.parametrize("state", [{}, USED_UP, {"approval": tokens.Approval.MANUAL}])
def test_decide_approves_the_same_device_key_again_without_consuming(state: dict[str, Any]) -> None:
    decision = _decide(token=_token(**state), registered=_registered())
    assert decision.outcome is Outcome.APPROVED
    assert "again" in decision.message
    assert decision.consume is False


def test_decide_refuses_a_revoked_cluster_even_with_its_own_key() -> None:
    decision = _decide(token=_token(), registered=_registered(revoked=True))
    assert decision.outcome is Outcome.REFUSED
    assert "revoked" in decision.message
    assert not decision.consume


def test_decide_refuses_a_revoked_cluster_asked_for_by_another_key() -> None:
    decision = _decide(token=_token(), registered=_registered(key=OTHER_KEY, revoked=True))
    assert decision.outcome is Outcome.REFUSED
    assert "revoked" in decision.message


def test_decide_refuses_the_same_key_asking_through_another_groups_token() -> None:
    decision = _decide(token=_token(group="warehouses"), registered=_registered(group=GROUP))
    assert decision.outcome is Outcome.REFUSED
    assert f"registered in group {GROUP!r}" in decision.message
    assert not decision.consume


def test_decide_registered_name_outranks_a_held_request() -> None:
    decision = _decide(
        token=_token(), registered=_registered(), held=_held(RequestStatus.DENIED, key=DEVICE_KEY)
    )
    assert decision.outcome is Outcome.APPROVED


# -- decide: held requests -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [RequestStatus.PENDING, RequestStatus.APPROVED])
def test_decide_refuses_a_name_another_key_waits_for(status: RequestStatus) -> None:
    decision = _decide(token=_token(), held=_held(status, key=OTHER_KEY))
    assert decision.outcome is Outcome.REFUSED
    assert "taken" in decision.message
    assert not decision.consume


@pytest.mark.parametrize("state", [{}, USED_UP])
def test_decide_keeps_the_same_key_pending_without_consuming(state: dict[str, Any]) -> None:
    token = _token(approval=tokens.Approval.MANUAL, **state)
    decision = _decide(token=token, held=_held(RequestStatus.PENDING))
    assert decision.outcome is Outcome.PENDING
    assert "edgefleet clusters approve pi-7" in decision.message
    assert decision.consume is False


def test_decide_tells_the_same_key_of_an_operators_approval_without_consuming() -> None:
    decision = _decide(token=_token(**USED_UP), held=_held(RequestStatus.APPROVED))
    assert decision == Decision(Outcome.APPROVED, "cluster 'pi-7' approved", consume=False)


def test_decide_tells_the_same_key_it_was_denied() -> None:
    decision = _decide(token=_token(), held=_held(RequestStatus.DENIED))
    assert decision.outcome is Outcome.DENIED
    assert "denied" in decision.message
    assert not decision.consume


@pytest.mark.parametrize("approval", list(tokens.Approval))
def test_decide_does_not_let_a_denied_request_of_another_key_block_the_name(
    approval: tokens.Approval,
) -> None:
    token = _token(approval=approval)
    decision = _decide(token=token, held=_held(RequestStatus.DENIED, key=OTHER_KEY))
    fresh = _decide(token=token)
    assert decision == fresh
    assert decision.outcome in (Outcome.APPROVED, Outcome.PENDING)
    assert decision.consume


def test_decide_denied_request_of_another_key_still_needs_a_usable_token() -> None:
    decision = _decide(token=_token(**EXPIRED), held=_held(RequestStatus.DENIED, key=OTHER_KEY))
    assert decision.outcome is Outcome.REFUSED
    assert "expired" in decision.message


def test_decide_gives_the_same_answer_twice_and_changes_nothing() -> None:
    token, held = _token(max_uses=5, uses=1), _held(RequestStatus.DENIED, key=OTHER_KEY)
    before = (dataclasses.replace(token), dataclasses.replace(held))
    first = _decide(token=token, held=held)
    assert _decide(token=token, held=held) == first
    assert (token, held) == before
