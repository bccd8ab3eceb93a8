from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certbound.authmethods import JWT_SPIFFE
from certbound.clientauth.assertion import ASSERTION_TYPE
from certbound.clientauth.credentials import Mechanism, read_credentials
from certbound.errors import InvalidClientError, InvalidRequestError, OAuthError
from certbound.reasons import GENERIC_REFUSAL, Reason
from tests.helpers import basic_auth


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_HEADER = _segment(b'{"alg":"ES256"}')
_UNSIGNED = _segment(b'{"alg":"none"}')
_FROM_JWT = _segment(b'{"sub":"from-jwt"}')


def test_basic_credentials_are_form_urldecoded() -> None:
    presented = read_credentials({}, basic_auth("id:1", "p%a+s s:ü"), None)
    assert (presented.client_id, presented.secret, presented.mechanism) == (
        "id:1",
        "p%a+s s:ü",
        Mechanism.BASIC,
    )


def test_post_credentials() -> None:
    presented = read_credentials({"client_id": "c", "client_secret": "s"}, None, None)
    assert (presented.client_id, presented.secret, presented.mechanism) == ("c", "s", Mechanism.POST)


def test_client_id_alone() -> None:
    presented = read_credentials({"client_id": "c"}, None, None)
    assert presented.mechanism is Mechanism.CLIENT_ID_ONLY


def test_non_basic_authorization_is_not_a_client_credential() -> None:
    assert read_credentials({"client_id": "c"}, "Bearer abc", None).mechanism is Mechanism.CLIENT_ID_ONLY


def test_assertion_names_its_client_by_sub() -> None:
    assertion = f"{_HEADER}.{_FROM_JWT}.sig"
    form = {"client_assertion": assertion, "client_assertion_type": ASSERTION_TYPE}
    presented = read_credentials(form, None, None)
    assert (presented.client_id, presented.mechanism) == ("from-jwt", Mechanism.ASSERTION)
    assert (presented.assertion_type, presented.client_id_named) == (ASSERTION_TYPE, False)


def test_a_client_id_parameter_names_the_client_whatever_the_sub() -> None:
    """A workload's token names the workload (SPEC §13): whether sub must equal client_id is the
    method's rule (certbound.clientauth.jwt_methods for a client's own assertions)."""
    form = {"client_assertion": f"{_HEADER}.{_FROM_JWT}.sig", "client_assertion_type": ASSERTION_TYPE}
    presented = read_credentials({**form, "client_id": "other"}, None, None)
    assert (presented.client_id, presented.client_id_named) == ("other", True)


def test_a_jwt_svid_is_an_assertion_of_its_own_type() -> None:
    header = _segment(b'{"alg":"ES256","typ":"JOSE"}')
    form = {"client_assertion": f"{header}.{_FROM_JWT}.sig", "client_assertion_type": JWT_SPIFFE}
    presented = read_credentials({**form, "client_id": "c"}, None, None)
    assert (presented.mechanism, presented.assertion_type) == (Mechanism.ASSERTION, JWT_SPIFFE)
    with pytest.raises(InvalidClientError, match="not a client authentication JWT") as refused:
        read_credentials({**form, "client_assertion_type": ASSERTION_TYPE, "client_id": "c"}, None, None)
    assert refused.value.reason is Reason.TYP_NOT_CLIENT_AUTH


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"client_assertion_type": ASSERTION_TYPE, "client_id": "c"}, Reason.MALFORMED_CREDENTIALS),
        (
            {"client_assertion": f"{_HEADER}.e30.sig", "client_assertion_type": "t"},
            Reason.ASSERTION_TYPE_UNSUPPORTED,
        ),
        (
            {"client_assertion": "not-a-jwt", "client_assertion_type": ASSERTION_TYPE},
            Reason.ASSERTION_MALFORMED,
        ),
        (
            {
                "client_assertion": f"{_UNSIGNED}.e30.",
                "client_assertion_type": ASSERTION_TYPE,
            },
            Reason.ALG_NONE,
        ),
    ],
)
def test_assertion_shape_is_refused_before_any_client_is_looked_up(
    form: dict[str, str], reason: Reason
) -> None:
    """These depend on the request alone, so the client may read why (no oracle: certbound.reasons)."""
    with pytest.raises(InvalidClientError) as refused:
        read_credentials({"client_id": "c", **form}, None, None)
    assert refused.value.reason is reason
    assert refused.value.public_description == refused.value.description != GENERIC_REFUSAL


@pytest.mark.parametrize(
    ("form", "authorization"),
    [
        ({"client_secret": "s"}, basic_auth("c", "s")),
        ({"client_id": "c", "client_secret": "s", "client_assertion": "a.b.c"}, None),
        ({"client_assertion": "a.b.c"}, basic_auth("c", "s")),
    ],
)
def test_two_mechanisms_are_invalid_request(form: dict[str, str], authorization: str | None) -> None:
    with pytest.raises(InvalidRequestError, match="more than one"):
        read_credentials(form, authorization, None)


def test_basic_and_different_body_client_id() -> None:
    with pytest.raises(InvalidRequestError, match="differs"):
        read_credentials({"client_id": "other"}, basic_auth("c", "s"), None)


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff:x").decode(),
        "Basic " + base64.b64encode(b":secret").decode(),
        "Basic " + base64.b64encode(b"c:%zz%ff").decode(),
    ],
)
def test_malformed_basic(header: str) -> None:
    with pytest.raises(InvalidClientError, match="malformed") as refused:
        read_credentials({}, header, None)
    assert refused.value.reason is Reason.MALFORMED_CREDENTIALS


def test_missing_client_id() -> None:
    with pytest.raises(InvalidClientError, match="client_id is missing") as refused:
        read_credentials({}, None, None)
    assert refused.value.reason is Reason.NO_CLIENT_ID


# Property tests: the Basic header and the form fields are untrusted bytes (issue 9)
ANY_TEXT = st.text(st.characters(exclude_categories=()))
AUTHORIZATION = st.one_of(
    ANY_TEXT.map(lambda text: "Basic " + text),
    st.binary().map(lambda raw: "Basic " + base64.b64encode(raw).decode("ascii")),
    ANY_TEXT,
)
FORM = st.dictionaries(
    st.sampled_from(["client_id", "client_secret", "client_assertion", "client_assertion_type"]),
    ANY_TEXT,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(AUTHORIZATION, FORM)
def test_any_header_and_form_give_credentials_or_an_oauth_error(
    authorization: str, form: dict[str, str]
) -> None:
    try:
        presented = read_credentials(form, authorization, None)
    except OAuthError:
        return
    assert presented.client_id


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1),
    st.text(st.characters(exclude_categories=("Cs",))),
)
def test_basic_credentials_round_trip(client_id: str, secret: str) -> None:
    presented = read_credentials({}, basic_auth(client_id, secret), None)
    assert (presented.client_id, presented.secret) == (client_id, secret)
