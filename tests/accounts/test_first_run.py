import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.accounts.first_run import forget_setup_state, setup_token

pytestmark = pytest.mark.django_db
PASSWORD = "Zebra-crossing-42!"


@pytest.fixture(autouse=True)
def _fresh_first_run_state():
    forget_setup_state()
    yield
    forget_setup_state()


def setup_data(**overrides):
    return {
        "setup_token": setup_token(),
        "username": "owner",
        "email": "owner@example.org",
        "password1": PASSWORD,
        "password2": PASSWORD,
    } | overrides


def test_every_page_leads_to_setup_while_no_user_exists(client):
    assert client.get("/").url == reverse("setup")
    assert client.get("/login/").url == reverse("setup")
    assert client.get("/setup/").status_code == 200


def test_wrong_token_is_refused_and_creates_nobody(client):
    response = client.post("/setup/", setup_data(setup_token="guess"))
    assert response.status_code == 200
    assert "setup token is not right" in response.content.decode()
    assert not get_user_model().objects.exists()


def test_right_token_creates_the_admin_and_signs_in(client):
    response = client.post("/setup/", setup_data())
    assert response.url == reverse("home")
    user = get_user_model().objects.get(username="owner")
    assert user.is_superuser and user.is_staff
    home = client.get("/")
    assert "signed in as <strong>owner</strong>" in home.content.decode()


def test_setup_page_disappears_once_a_user_exists(client):
    get_user_model().objects.create_user("someone", password=PASSWORD)
    assert client.get("/setup/").status_code == 404
    assert client.post("/setup/", setup_data()).status_code == 404
    assert get_user_model().objects.count() == 1


def test_pages_require_login(client):
    get_user_model().objects.create_user("someone", password=PASSWORD)
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")
    assert client.get("/admin/").status_code == 302


def test_registration_is_off_unless_enabled(client, settings):
    get_user_model().objects.create_user("someone", password=PASSWORD)
    assert client.get("/register/").status_code == 404
    settings.REGISTRATION_OPEN = True
    response = client.post(
        "/register/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="newbie").exists()


def test_logout_signs_out(client):
    user = get_user_model().objects.create_user("someone", password=PASSWORD)
    client.force_login(user)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_security_headers(client):
    get_user_model().objects.create_user("someone", password=PASSWORD)
    response = client.get("/login/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
