"""Uploads over HTTP: what is accepted, how it is cleaned, who may see it, and when files go."""

import base64
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from apps.media import images
from apps.media.models import Attachment
from tests.media import imagefiles

pytestmark = pytest.mark.django_db

PASSWORD = "Zebra-crossing-42!"


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olga", password=PASSWORD)


@pytest.fixture
def client_for(owner):
    def make(user=owner, **kwargs):
        client = Client(**kwargs)
        client.force_login(user)
        return client

    return make


def post_file(client, data, name, content_type="application/octet-stream"):
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post("/media/uploads/", {"file": upload})


def stored_files(settings):
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def opened(attachment, relative=None):
    return Image.open(attachment.absolute(relative))


def test_png_upload_is_stored_and_described(client_for, owner, settings):
    response = post_file(client_for(), imagefiles.png(64, 48), "pic.png", "image/png")
    assert response.status_code == 200, response.content
    body = response.json()
    attachment = Attachment.objects.get(pk=body["id"])
    assert body == {
        **body,
        "url": f"/media/{attachment.pk}/",
        "thumbnail_url": f"/media/{attachment.pk}/thumbnail/",
        "width": 64,
        "height": 48,
        "content_type": "image/jpeg",
    }
    assert attachment.owner == owner and attachment.kind == "upload"
    assert attachment.path.startswith(f"{owner.pk}/") and "pic" not in attachment.path
    assert len(attachment.sha256) == 64 and attachment.bytes == attachment.absolute().stat().st_size
    assert len(stored_files(settings)) == 2  # the image and its thumbnail


def test_decompression_bomb_is_refused_without_decoding_and_nothing_stored(client_for, settings):
    bomb = imagefiles.bomb_png()
    assert len(bomb) < 200
    response = post_file(client_for(), bomb, "huge.png", "image/png")
    assert response.status_code == 400
    assert response.json() == {
        "error": "huge.png claims 50000×50000 pixels, more than the 40-megapixel limit"
    }
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_long_side_over_the_limit_is_refused():
    with pytest.raises(images.ImageRejected, match="no side may be longer than 12,000 pixels"):
        images.decode(imagefiles.bomb_png(13_000, 10), name="strip.png")


def test_oversize_file_is_refused_with_sizes_and_nothing_stored(client_for, settings):
    settings.UPLOAD_MAX_BYTES = 4096
    data = imagefiles.noisy_png(40, 40)
    assert 4096 < len(data) < 4096 + 64 * 1024
    response = post_file(client_for(), data, "photo.png", "image/png")
    assert response.status_code == 400
    assert response.json()["error"] == f"photo.png is {images.human_bytes(len(data))}; the limit is 4 KB"
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_oversize_body_is_refused_before_parsing(client_for, settings):
    settings.UPLOAD_MAX_BYTES = 1024
    response = post_file(client_for(), imagefiles.noisy_png(200, 200), "big.png", "image/png")
    assert response.status_code == 400
    assert response.json()["error"].startswith("the upload is 1") and "limit is 1 KB" in response.json()["error"]
    assert stored_files(settings) == []


def test_human_bytes_reads_like_the_messages():
    assert images.human_bytes(31 * 1024 * 1024 + 5) == "31 MB"
    assert images.human_bytes(20 * 1024 * 1024) == "20 MB"
    assert images.human_bytes(1536 * 1024) == "1.5 MB"
    assert images.human_bytes(900) == "900 bytes"


def test_executable_renamed_png_is_refused(client_for, settings):
    response = post_file(client_for(), imagefiles.fake_exe(), "setup.png", "image/png")
    assert response.status_code == 400
    assert response.json() == {"error": "setup.png is not a PNG, JPEG, WebP or GIF image"}
    assert stored_files(settings) == []


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_other_image_formats_are_refused(fmt, client_for):
    data = imagefiles.encoded(imagefiles.two_colour(10, 10), fmt)
    response = post_file(client_for(), data, "picture.png", "image/png")
    assert response.status_code == 400 and "is not a PNG, JPEG, WebP or GIF" in response.json()["error"]


def test_truncated_image_is_refused_clearly(client_for):
    data = imagefiles.encoded(imagefiles.two_colour(300, 300), "JPEG")[:400]
    response = post_file(client_for(), data, "cut.jpg", "image/jpeg")
    assert response.status_code == 400
    assert response.json()["error"] == "cut.jpg is damaged or truncated: it could not be read as JPEG"


def test_exif_orientation_is_applied_and_metadata_stripped(client_for):
    data = imagefiles.jpeg_with_orientation_and_gps(40, 20, orientation=6)
    assert b"CanaryCam" in data
    response = post_file(client_for(), data, "phone.jpg", "image/jpeg")
    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert (attachment.width, attachment.height) == (20, 40)
    stored = attachment.absolute().read_bytes()
    assert b"CanaryCam" not in stored and b"Exif" not in stored
    with opened(attachment) as image:
        assert image.size == (20, 40)
        assert dict(image.getexif()) == {}
        # Orientation 6 means "rotate 90° clockwise to view": the left (red) half ends on top.
        top, bottom = image.getpixel((10, 3)), image.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_gif_keeps_the_first_frame(client_for):
    response = post_file(client_for(), imagefiles.animated_gif(), "anim.gif", "image/gif")
    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert attachment.content_type == "image/jpeg"
    with opened(attachment) as image:
        assert getattr(image, "n_frames", 1) == 1
        red, green, blue = image.getpixel((15, 10))
    assert red > 200 and blue < 60


def test_webp_and_transparency(client_for):
    opaque = imagefiles.encoded(imagefiles.two_colour(30, 30), "WEBP")
    clear = Image.new("RGBA", (30, 30), (0, 255, 0, 0))
    response = post_file(client_for(), opaque, "a.webp")
    assert response.json()["content_type"] == "image/jpeg"
    response = post_file(client_for(), imagefiles.encoded(clear, "PNG"), "b.png")
    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert attachment.content_type == "image/png"
    with opened(attachment) as image:
        assert image.mode == "RGBA" and image.getpixel((1, 1))[3] == 0


@pytest.mark.parametrize(
    "size, detail, expected",
    [
        ((3000, 1000), "high", (2000, 667)),
        ((3000, 1000), "auto", (2000, 667)),
        ((3000, 1000), "low", (512, 171)),
        ((1600, 1200), "high", (1024, 768)),
        ((1200, 1600), "low", (384, 512)),
        ((300, 200), "high", (300, 200)),
        ((300, 200), "low", (300, 200)),
    ],
)
def test_fit_for_detail(size, detail, expected):
    assert images.fit_for_detail(size, detail) == expected


def test_data_url_is_resized_per_detail_and_cached(client_for):
    response = post_file(client_for(), imagefiles.png(1600, 1200), "wide.png")
    attachment = Attachment.objects.get(pk=response.json()["id"])
    for detail, expected in (("high", (1024, 768)), ("low", (512, 384)), ("auto", (1024, 768))):
        url = images.data_url_for(attachment, detail=detail)
        assert url.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            assert image.size == expected and image.format == "JPEG"
    assert attachment.absolute(attachment.variant_path("high")).exists()
    assert attachment.absolute(attachment.variant_path("low")).exists()


def test_thumbnail_fits_the_box(client_for):
    response = post_file(client_for(), imagefiles.png(1000, 500), "t.png")
    attachment = Attachment.objects.get(pk=response.json()["id"])
    with opened(attachment, attachment.variant_path("thumb")) as image:
        assert image.size == (320, 160)


def test_owner_gets_image_with_safe_headers(client_for):
    client = client_for()
    body = post_file(client, imagefiles.png(), 'holiday "best";\r\n.png').json()
    for url in (body["url"], body["thumbnail_url"]):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
        disposition = response["Content-Disposition"]
        assert disposition.startswith("inline; filename=") and "/" not in disposition
        assert response.content[:2] == b"\xff\xd8"
    download = client.get(body["url"] + "?download=1")
    assert download["Content-Disposition"].startswith("attachment; filename=")
    disposition = download["Content-Disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('best_.jpg"')
    assert disposition.count('"') == 2 and "\r" not in disposition and "\n" not in disposition


def test_other_user_gets_404_and_anonymous_is_sent_to_login(client_for):
    body = post_file(client_for(), imagefiles.png(), "mine.png").json()
    mallory = get_user_model().objects.create_user("mallory", password=PASSWORD)
    other = client_for(mallory)
    assert other.get(body["url"]).status_code == 404
    assert other.get(body["thumbnail_url"]).status_code == 404
    assert other.get(body["url"] + "?download=1").status_code == 404
    assert other.get("/media/00000000-0000-0000-0000-000000000000/").status_code == 404
    anonymous = Client().get(body["url"])
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_upload_needs_csrf_token(client_for, owner):
    client = client_for(enforce_csrf_checks=True)
    response = post_file(client, imagefiles.png(), "p.png")
    assert response.status_code == 403
    assert Attachment.objects.count() == 0


def test_upload_wants_exactly_one_file(client_for):
    response = client_for().post("/media/uploads/", {})
    assert response.status_code == 400 and "form field 'file'" in response.json()["error"]


def test_deleting_an_attachment_deletes_its_files(
    client_for, settings, django_capture_on_commit_callbacks
):
    client = client_for()
    body = post_file(client, imagefiles.png(1600, 1200), "d.png").json()
    attachment = Attachment.objects.get(pk=body["id"])
    images.data_url_for(attachment, detail="low")
    assert len(stored_files(settings)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        attachment.delete()
    assert stored_files(settings) == []


def test_deleting_a_conversation_deletes_its_files(
    client_for, owner, settings, django_capture_on_commit_callbacks
):
    from apps.chat.models import Conversation, Message

    conversation = Conversation.objects.create(owner=owner, model_key="gpt-4o")
    message = Message.objects.create(conversation=conversation, role="user", content="look")
    client = client_for()
    ids = [post_file(client, imagefiles.png(), f"{n}.png").json()["id"] for n in range(2)]
    keep = post_file(client, imagefiles.png(), "keep.png").json()["id"]
    images.claim_attachments(owner=owner, ids=ids, conversation=conversation, message=message)
    assert len(stored_files(settings)) == 6
    with django_capture_on_commit_callbacks(execute=True):
        conversation.delete()
    assert list(Attachment.objects.values_list("pk", flat=True)) == [Attachment.objects.get(pk=keep).pk]
    assert len(stored_files(settings)) == 2


def test_claim_checks_owner_count_and_freshness(client_for, owner):
    from apps.chat.models import Conversation

    conversation = Conversation.objects.create(owner=owner, model_key="gpt-4o")
    mallory = get_user_model().objects.create_user("mallory", password=PASSWORD)
    theirs = post_file(client_for(mallory), imagefiles.png(), "m.png").json()["id"]
    mine = post_file(client_for(), imagefiles.png(), "o.png").json()["id"]
    with pytest.raises(images.ImageRejected, match="was not found"):
        images.claim_attachments(owner=owner, ids=[mine, theirs], conversation=conversation, message=None)
    with pytest.raises(images.ImageRejected, match="at most 10 may go with one message"):
        images.claim_attachments(owner=owner, ids=[mine] * 11, conversation=conversation, message=None)
    claimed = images.claim_attachments(owner=owner, ids=[mine], conversation=conversation, message=None)
    assert [str(item.pk) for item in claimed] == [mine]
    assert Attachment.objects.get(pk=mine).conversation == conversation


def test_purge_deletes_only_old_unattached_uploads(
    client_for, owner, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from apps.chat.models import Conversation

    client = client_for()
    old, fresh, sent = (post_file(client, imagefiles.png(), f"{n}.png").json()["id"] for n in range(3))
    conversation = Conversation.objects.create(owner=owner, model_key="gpt-4o")
    images.claim_attachments(owner=owner, ids=[sent], conversation=conversation, message=None)
    Attachment.objects.filter(pk__in=[old, sent]).update(created=timezone.now() - timedelta(days=2))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_uploads", stdout=out)
    assert "deleted 1 unattached upload(s)" in out.getvalue()
    assert sorted(map(str, Attachment.objects.values_list("pk", flat=True))) == sorted([fresh, sent])
    assert len(stored_files(settings)) == 4


def test_selectors_are_owner_scoped(client_for, owner):
    from apps.media import selectors

    mine = post_file(client_for(), imagefiles.png(), "a.png").json()["id"]
    mallory = get_user_model().objects.create_user("mallory", password=PASSWORD)
    assert selectors.get_owned_attachment(owner=owner, attachment_id=mine).original_name == "a.png"
    assert selectors.get_owned_attachment(owner=mallory, attachment_id=mine) is None


def test_large_images_are_streamed_from_the_file(client_for, monkeypatch):
    from apps.media import views

    monkeypatch.setattr(views, "IN_MEMORY_MAX", 10)
    client = client_for()
    body = post_file(client, imagefiles.png(), "s.png").json()
    response = client.get(body["url"])
    assert response.streaming and response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"


def test_a_failed_write_leaves_no_file_and_no_row(owner, settings, monkeypatch):
    real_replace = images.os.replace
    calls = []

    def replace_then_fail(source, target):
        calls.append(target)
        if len(calls) == 2:  # the thumbnail: the original is already in place
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(images.os, "replace", replace_then_fail)
    with pytest.raises(OSError):
        images.create_upload(owner=owner, file=io.BytesIO(imagefiles.png(600, 300)), name="full.png")
    assert len(calls) == 2
    assert Attachment.objects.count() == 0 and stored_files(settings) == []
