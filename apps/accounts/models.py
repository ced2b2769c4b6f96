from django.conf import settings
from django.db import models


class ExternalIdentity(models.Model):
    """The IdP account a Lapis user signs in with: matched on (issuer, subject), never on e-mail.

    ``subject`` is Entra's ``oid`` (stable for one person in one tenant) or else the ``sub``.
    ``groups_overage`` is set when the IdP said the user has too many groups to list in the token;
    the admin is shown it with what to do (see apps.accounts.oidc.OVERAGE_ADVICE).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    tenant = models.CharField(max_length=64, blank=True)
    groups_overage = models.BooleanField(default=False)
    last_sign_in = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="unique_external_identity")]
        verbose_name_plural = "external identities"

    def __str__(self):
        return f"{self.subject} at {self.issuer}"
