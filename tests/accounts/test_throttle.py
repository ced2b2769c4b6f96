import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

pytestmark = pytest.mark.django_db
PASSWORD = "Zebra-crossing-42!"


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def attempt(client, username, password, address="10.0.0.1"):
    return client.post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_wrong_password_says_so(client, alice):
    response = attempt(client, "alice", "nope")
    assert "Please enter a correct username and password" in response.content.decode()


def test_five_failures_lock_the_account_even_with_the_right_password(client, alice):
    for _ in range(5):
        attempt(client, "alice", "wrong", address="10.0.0.1")
    response = attempt(client, "alice", PASSWORD, address="10.9.9.9")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in body and "Try again in" in body
    assert "_auth_user_id" not in client.session


def test_one_office_behind_a_nat_is_not_locked_out_by_a_few_accounts(client, alice):
    get_user_model().objects.create_user("bob", password=PASSWORD)
    for i in range(8):  # more than the per-account limit, far below the per-address one
        attempt(client, f"nobody{i}", "wrong", address="10.0.0.7")
    assert attempt(client, "bob", PASSWORD, address="10.0.0.7").status_code == 302


def test_the_per_address_limit_locks_that_address(client, alice, settings):
    from apps.accounts.throttle import record_failure

    get_user_model().objects.create_user("bob", password=PASSWORD)
    for i in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT):
        record_failure(username=f"nobody{i}", address="10.0.0.7")
    assert "Too many failed" in attempt(client, "bob", PASSWORD, address="10.0.0.7").content.decode()
    assert attempt(client, "bob", PASSWORD, address="10.0.0.8").status_code == 302


def test_the_account_key_is_the_normalised_username(client, alice):
    # Fullwidth letters (NFKC) and another case are the same account to Django's login.
    for name in ["ａｌｉｃｅ", "ALICE", "Alice", "alice ", "aLiCe"]:
        attempt(client, name, "wrong", address="10.0.0.1")
    assert "Too many failed" in attempt(client, "alice", PASSWORD, address="10.9.9.9").content.decode()


def test_failures_are_logged_with_the_address_and_never_the_password(client, alice, caplog):
    attempt(client, "alice", "Secret-typo-123", address="10.1.2.3")
    for _ in range(5):
        attempt(client, "alice", "Secret-typo-123", address="10.1.2.3")
    assert "sign-in failed for 'alice' from 10.1.2.3" in caplog.text
    assert "sign-in throttled for 'alice' from 10.1.2.3" in caplog.text
    assert "Secret-typo-123" not in caplog.text


@pytest.mark.parametrize(("proxies", "forwarded", "expected"), [
    (0, "6.6.6.6", "10.0.0.1"),  # no proxy trusted: the header is ignored
    (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the spoofed leftmost entry is not used
    (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
    (2, "203.0.113.9", "10.0.0.1"),  # fewer entries than proxies: the peer
])
def test_client_address_counts_trusted_proxies_from_the_right(rf, settings, proxies, forwarded, expected):
    from apps.accounts.throttle import client_address

    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_a_signed_in_non_staff_user_gets_a_plain_403_on_admin(client, alice):
    client.force_login(alice)
    response = client.get("/admin/", follow=False)
    assert response.status_code == 403
    assert "not an admin" in response.content.decode()
    response = client.get("/admin/azure/configversion/", follow=False)
    assert response.status_code == 403


def test_four_failures_still_allow_the_right_password(client, alice):
    for _ in range(4):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD).status_code == 302


def test_window_expiry_lets_the_account_in_again(client, alice, settings):
    import time

    from apps.accounts.throttle import record_failure

    # The failures are recorded directly: five password hashes on a loaded machine can outlast a
    # short window, and the window, not the form, is what this test is about.
    settings.LOGIN_FAILURE_WINDOW = 3
    for _ in range(5):
        record_failure(username="alice", address=None)
    assert "Too many failed" in attempt(client, "alice", PASSWORD).content.decode()
    time.sleep(3.2)
    assert attempt(client, "alice", PASSWORD).status_code == 302


def test_admin_login_goes_through_the_throttled_form(client):
    get_user_model().objects.create_user("someone", password=PASSWORD)
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response.url == "/login/?next=/admin/"
