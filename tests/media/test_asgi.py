"""The stored image through the real ASGI application (what Daphne serves)."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from project.application import application
from tests.media import imagefiles

pytestmark = pytest.mark.django_db(transaction=True)


def upload_as(username):
    user = get_user_model().objects.create_user(username, password="Zebra-crossing-42!")
    client = Client()
    client.force_login(user)
    body = client.post(
        "/media/uploads/", {"file": SimpleUploadedFile("x.webp", imagefiles.encoded(imagefiles.two_colour(8, 8), "WEBP"))}
    ).json()
    return body, f"sessionid={client.cookies['sessionid'].value}".encode()


async def get(path, cookie):
    headers = [(b"host", b"localhost"), (b"cookie", cookie)]
    return await HttpCommunicator(application, "GET", path, headers=headers).get_response(timeout=10)


def test_image_is_served_through_asgi_to_its_owner_only():
    # Sync test around async_to_sync: the app's sync views then run on this thread, on the
    # test's own database connection (no stray connection keeps PostgreSQL's test DB busy).
    body, cookie = upload_as("asgi-owner")
    _, other_cookie = upload_as("asgi-other")
    response = async_to_sync(get)(body["url"], cookie)
    headers = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    assert response["status"] == 200 and response["body"][:3] == b"\xff\xd8\xff"
    assert headers["content-type"] == "image/jpeg" and headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"] == 'inline; filename="x.jpg"'
    assert "sandbox" in headers["content-security-policy"]
    assert async_to_sync(get)(body["url"], other_cookie)["status"] == 404
