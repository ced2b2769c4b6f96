import warnings

from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "apps.media"
    label = "media"

    def ready(self):
        from PIL import Image

        from apps.media import images, signals  # noqa: F401  (connects the file cleanup)

        # Pillow's own guard, as a second line behind images.check_dimensions: with half our
        # limit here, anything over our limit is a hard error inside Pillow (WebP's parser
        # checks before allocating its canvas); the warnings it gives in between are moot
        # because our stricter check has run before any decode.
        Image.MAX_IMAGE_PIXELS = images.MAX_PIXELS // 2
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
