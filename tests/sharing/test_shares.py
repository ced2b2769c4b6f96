"""Share links over HTTP: who may open one, what it shows (a snapshot), its images, revoking,
and continuing it as one's own copy. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from apps.azure.registry import get_registry
from apps.chat.models import Conversation, Message
from apps.media.models import Attachment
from apps.sharing import services
from apps.sharing.models import Share, SharedImage
from tests.transfer.builders import branched_conversation

pytestmark = pytest.mark.django_db


def user(name, groups=()):
    made = get_user_model().objects.create_user(name, password="Zebra-crossing-42!")
    for group in groups:
        made.groups.add(Group.objects.get_or_create(name=group)[0])
    return made


def client_of(someone):
    client = Client()
    client.force_login(someone)
    return client


@pytest.fixture
def alice():
    return user("alice")


@pytest.fixture
def shared(alice):
    conversation, messages = branched_conversation(alice, with_image=True)
    return conversation, messages


def create(client, conversation, **form):
    return client.post(f"/c/{conversation.pk}/share/", form)


def test_owner_creates_a_link_with_an_unguessable_token_and_lists_it(alice, shared):
    conversation, messages = shared
    client = client_of(alice)
    page = client.get(f"/c/{conversation.pk}/share/")
    assert page.status_code == 200
    assert "How deep is it?" in page.content.decode()  # the branch picker
    response = create(client, conversation, message_id=str(messages["a2b"].pk))
    assert response.status_code == 302
    share = Share.objects.get()
    assert len(share.token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", share.token)
    listing = client.get("/shares/").content.decode()
    assert f"/s/{share.token}/" in listing and "everyone signed in" in listing
    # The snapshot is the current branch only: Q1, A1, Q2, A2b (not A2a, not the edited branch).
    assert [m.content for m in share.messages.all()] == [
        "Where is the harbour?", messages["a1"].content, "How deep is it?", "About 8 m at low tide."
    ]


def test_up_to_a_chosen_message_and_later_edits_do_not_change_it(alice, shared):
    conversation, messages = shared
    client = client_of(alice)
    create(client, conversation, message_id=str(messages["a1"].pk))
    share = Share.objects.get()
    Message.objects.filter(pk=messages["a1"].pk).update(content="rewritten later")
    conversation.delete()
    viewer = client_of(user("bob"))
    page = viewer.get(f"/s/{share.token}/").content.decode()
    assert "At the **north** end." in page and "rewritten later" not in page
    assert "How deep is it?" not in page


def test_anonymous_and_unlisted_users_are_refused(alice, shared):
    conversation, _ = shared
    bob, carol, dave = user("bob"), user("carol", groups=["crew"]), user("dave")
    response = create(client_of(alice), conversation, users="bob", groups="crew")
    assert response.status_code == 302
    token = Share.objects.get().token
    anonymous = Client().get(f"/s/{token}/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert client_of(bob).get(f"/s/{token}/").status_code == 200
    assert client_of(carol).get(f"/s/{token}/").status_code == 200  # through the group
    refused = client_of(dave).get(f"/s/{token}/")
    assert refused.status_code == 404
    assert client_of(dave).post(f"/s/{token}/continue").status_code == 404
    assert client_of(dave).get(f"/s/{token}x/").status_code == 404


def test_unknown_names_are_refused_with_the_name(alice, shared):
    conversation, _ = shared
    response = create(client_of(alice), conversation, users="bob, nobody", groups="")
    assert response.status_code == 400
    assert "No such user: bob, nobody." in response.content.decode()
    user("bob")
    response = create(client_of(alice), conversation, users="bob", groups="ghosts")
    assert "No such group: ghosts." in response.content.decode()
    assert not Share.objects.exists()


def test_someone_elses_conversation_cannot_be_shared(alice, shared):
    conversation, _ = shared
    mallory = client_of(user("mallory"))
    assert mallory.get(f"/c/{conversation.pk}/share/").status_code == 404
    assert create(mallory, conversation).status_code == 404
    create(client_of(alice), conversation)
    share = Share.objects.get()
    assert mallory.post(f"/shares/{share.pk}/revoke").status_code == 404
    assert Share.objects.get().revoked is None


def test_revoked_links_stop_working_with_their_images(alice, shared, django_capture_on_commit_callbacks):
    conversation, _ = shared
    create(client_of(alice), conversation)
    share = Share.objects.get()
    image = SharedImage.objects.get()
    bob = client_of(user("bob"))
    url = f"/s/{share.token}/images/{image.pk}/"
    assert bob.get(f"/s/{share.token}/").status_code == 200
    assert bob.get(url).status_code == 200
    path = image.absolute()
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):  # the files go once the revoke commits
        response = client_of(alice).post(f"/shares/{share.pk}/revoke")
    assert response.status_code == 302
    assert bob.get(f"/s/{share.token}/").status_code == 404
    assert bob.get(url).status_code == 404
    assert client_of(alice).get(f"/s/{share.token}/").status_code == 404  # the owner too
    assert not path.exists() and not SharedImage.objects.exists()
    assert "revoked" in client_of(alice).get("/shares/").content.decode()


def test_images_are_served_to_the_shares_viewers_only(alice, shared):
    conversation, messages = shared
    bob, eve = user("bob"), user("eve")
    create(client_of(alice), conversation, users="bob")
    share = Share.objects.get()
    image = SharedImage.objects.get()
    original = messages["image"]
    for suffix in ("", "thumbnail/"):
        url = f"/s/{share.token}/images/{image.pk}/{suffix}"
        served = client_of(bob).get(url)
        assert served.status_code == 200
        assert served["Content-Type"] == original.content_type and served["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served["Content-Security-Policy"]
        assert client_of(eve).get(url).status_code == 404
        assert Client().get(url).status_code == 302
    assert b"".join([client_of(bob).get(f"/s/{share.token}/images/{image.pk}/").content]) == original.absolute().read_bytes()
    # The owner's original stays owner-only; the share's id is not an id under /media/.
    assert client_of(bob).get(f"/media/{original.pk}/").status_code == 404
    assert client_of(bob).get(f"/media/{image.pk}/").status_code == 404
    # An image of another share is not reachable through this share's token.
    other_conversation, _ = branched_conversation(alice, with_image=True)
    create(client_of(alice), other_conversation)
    other = SharedImage.objects.exclude(pk=image.pk).get()
    assert client_of(bob).get(f"/s/{share.token}/images/{other.pk}/").status_code == 404
    # The page references the share-scoped addresses.
    page = client_of(bob).get(f"/s/{share.token}/").content.decode()
    assert f"/s/{share.token}/images/{image.pk}/thumbnail/" in page


def test_page_carries_messages_as_data_under_the_strict_csp(alice):
    conversation, messages = branched_conversation(alice)
    Message.objects.filter(pk=messages["a2b"].pk).update(content="<script>alert(1)</script><img src=x onerror=alert(2)>")
    create(client_of(alice), conversation)
    share = Share.objects.get()
    response = client_of(user("bob")).get(f"/s/{share.token}/")
    body = response.content.decode()
    assert "<script>alert(1)" not in body  # json_script escapes <, > and &
    assert "\\u003Cscript\\u003Ealert(1)" in body
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'src="/static/js/share.js"' in body
    assert "flash" not in body  # the snapshot is data for share.js, not the flash messages


def test_a_streaming_answer_cannot_be_shared(alice):
    conversation, messages = branched_conversation(alice)
    Message.objects.filter(pk=messages["a2b"].pk).update(status="streaming")
    response = create(client_of(alice), conversation)
    assert response.status_code == 400
    assert "still being written" in response.content.decode()


def test_continue_as_a_copy_makes_the_viewer_their_own_conversation(alice, shared, activate_config, azure_simulator):
    activate_config(azure_simulator.config_yaml())
    conversation, messages = shared
    create(client_of(alice), conversation)
    share = Share.objects.get()
    bob = user("bob")
    response = client_of(bob).post(f"/s/{share.token}/continue")
    assert response.status_code == 302
    copy = Conversation.objects.get(owner=bob)
    assert response["Location"] == f"/c/{copy.pk}/"
    data = client_of(bob).get(f"/api/chat/conversations/{copy.pk}/").json()
    assert [m["content"] for m in data["messages"]] == [m.content for m in share.messages.all()]
    assert data["current_leaf_id"] == data["messages"][-1]["id"]
    assert data["messages"][1]["parent_id"] == data["messages"][0]["id"]
    (picture,) = data["messages"][0]["attachments"]
    copied = Attachment.objects.get(pk=picture["id"])
    assert copied.owner == bob and copied.absolute().read_bytes() == messages["image"].absolute().read_bytes()
    assert client_of(bob).get(picture["url"]).status_code == 200
    # The copy is independent: revoking the share or deleting Alice's conversation leaves it.
    services.revoke_share(share=share)
    conversation.delete()
    assert client_of(bob).get(picture["url"]).status_code == 200
    assert copy.model_key in {spec.key for spec in get_registry().chat_models()}


def test_staff_can_revoke_a_link_in_the_admin(alice):
    conversation, _ = branched_conversation(alice)
    create(client_of(alice), conversation)
    share = Share.objects.get()
    staff = get_user_model().objects.create_superuser("root", password="Zebra-crossing-42!")
    admin = client_of(staff)
    assert admin.get("/admin/sharing/share/").status_code == 200
    response = admin.post("/admin/sharing/share/", {"action": "revoke", "_selected_action": [str(share.pk)]})
    assert response.status_code == 302
    share.refresh_from_db()
    assert share.revoked is not None and not share.messages.exists()
    assert client_of(user("bob")).get(f"/s/{share.token}/").status_code == 404
