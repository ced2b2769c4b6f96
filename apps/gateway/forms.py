from django import forms

EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"),
                  ("365", "In a year")]


class NewKeyForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, help_text="What the key is for, e.g. “notebook”.")
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")
