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


def test_five_failures_from_one_address_lock_that_address(client, alice):
    get_user_model().objects.create_user("bob", password=PASSWORD)
    for i in range(5):
        attempt(client, f"nobody{i}", "wrong", address="10.0.0.7")
    assert "Too many failed" in attempt(client, "bob", PASSWORD, address="10.0.0.7").content.decode()
    assert attempt(client, "bob", PASSWORD, address="10.0.0.8").status_code == 302


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
