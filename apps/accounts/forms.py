from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from apps.accounts import throttle
from apps.accounts.first_run import check_setup_token


class SetupForm(UserCreationForm):
    """Creates the first admin; only someone who can read the server log knows the token."""

    setup_token = forms.CharField(
        label="Setup token",
        help_text="Printed in the server log at start (and by make run).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    email = forms.EmailField(required=False)

    field_order = ["setup_token", "username", "email", "password1", "password2"]

    def clean_setup_token(self):
        token = self.cleaned_data["setup_token"]
        if not check_setup_token(token):
            raise forms.ValidationError(
                "That setup token is not right. Copy it from the server log line "
                "'No user exists yet ... setup token ...'."
            )
        return token

    def save(self, commit=True):
        user = super().save(commit=False)
        user.email = self.cleaned_data.get("email", "")
        user.is_staff = True
        user.is_superuser = True
        if commit:
            user.save()
        return user


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": (
            "Too many failed sign-in attempts for this account or from this address. "
            "Try again in %(seconds)d seconds."
        ),
    }

    def clean(self):
        """Refuse while throttled; count each failure against the account and the address."""
        username = self.data.get("username", "")
        address = throttle.client_address(self.request) if self.request else ""
        wait = throttle.seconds_until_allowed(username=username, address=address)
        if wait:
            throttle.log_refusal(kind="throttled", username=username, address=address, reason=f"retry in {wait}s")
            raise forms.ValidationError(
                self.error_messages["throttled"], code="throttled", params={"seconds": wait}
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttle.record_failure(username=username, address=address)
            throttle.log_refusal(kind="failed", username=username, address=address, reason="wrong username or password")
            raise
        throttle.clear_failures(username=username)
        return cleaned
