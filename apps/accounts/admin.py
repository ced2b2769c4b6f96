"""The user admin, with what the admin needs for company sign-in: the IdP identity (and a group
overage warning with what to do), and which models the user gets and why."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.html import format_html, format_html_join

from apps.accounts.models import ExternalIdentity

User = get_user_model()


class ExternalIdentityInline(admin.StackedInline):
    model = ExternalIdentity
    can_delete = False
    extra = 0
    max_num = 0
    fields = ("issuer", "subject", "tenant", "groups_overage", "last_sign_in")
    readonly_fields = fields
    verbose_name = "company sign-in identity"


class LapisUserAdmin(UserAdmin):
    inlines = [ExternalIdentityInline]
    readonly_fields = (*UserAdmin.readonly_fields, "model_access")
    fieldsets = (*UserAdmin.fieldsets, ("Model access", {"fields": ("model_access",)}))
    list_display = (*UserAdmin.list_display, "groups_overage")

    @admin.display(boolean=True, description="group overage")
    def groups_overage(self, user):
        identity = getattr(user, "external_identity", None)
        return bool(identity and identity.groups_overage)

    @admin.display(description="Models this user gets")
    def model_access(self, user):
        from apps.azure.access import explain
        from apps.azure.registry import get_registry

        if user.pk is None:
            return "–"
        rows = explain(user=user, registry=get_registry())
        if not rows:
            return "No models are configured."
        body = format_html_join(
            "", '<tr data-testid="access-row" data-key="{}" data-allowed="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            ((r["key"], "yes" if r["allowed"] else "no", r["key"], r["group"],
              "yes" if r["allowed"] else "no", r["why"]) for r in rows),
        )
        return format_html(
            '<table data-testid="model-access"><thead><tr><th>Model</th><th>Group</th><th>Gets it</th>'
            "<th>Why</th></tr></thead><tbody>{}</tbody></table>", body)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from apps.accounts.oidc import OVERAGE_ADVICE

        identity = ExternalIdentity.objects.filter(user_id=object_id, groups_overage=True).first()
        if identity and request.method == "GET":
            messages.warning(request, OVERAGE_ADVICE)
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(User)
admin.site.register(User, LapisUserAdmin)
