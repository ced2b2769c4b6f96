"""Static files for the Docker image: hashed names and compressed copies (WhiteNoise)."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's manifest storage without rewriting references inside JavaScript.

    The pinned vendor builds end with ``//# sourceMappingURL=...`` comments for .map files we do
    not ship, which the JS patterns would turn into a failed build; our own modules import each
    other by relative path, which the unhashed copies (also collected) keep serving.
    """

    patterns = tuple(
        (glob, rules) for glob, rules in CompressedManifestStaticFilesStorage.patterns if glob != "*.js"
    )
